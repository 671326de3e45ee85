#!/usr/bin/env python3
"""A Claude Code PostToolUse hook, run by interlock unchanged.

After `npm test` in Bash, it reads the command's output as Claude Code's Bash tool
response has it (`tool_response.stdout`) and tells the model whether the tests passed,
or blocks with the failure.
"""

import json
import sys

event = json.load(sys.stdin)
if event.get("hook_event_name") != "PostToolUse" or event.get("tool_name") != "Bash":
    sys.exit(0)
if "npm test" not in event.get("tool_input", {}).get("command", ""):
    sys.exit(0)

response = event.get("tool_response", {})
stdout = response.get("stdout", "")
if response.get("interrupted"):
    print(json.dumps({"decision": "block", "reason": "npm test was interrupted"}))
elif " passing" in stdout and " failing" not in stdout:
    context = f"npm test passed ({stdout.strip().splitlines()[-1].strip()})"
    output = {"hookEventName": "PostToolUse", "additionalContext": context}
    print(json.dumps({"hookSpecificOutput": output}))
else:
    detail = (response.get("stderr") or stdout).strip()[-200:]
    print(json.dumps({"decision": "block", "reason": f"npm test failed: {detail}"}))
