#!/bin/sh
# A Claude Code PreToolUse hook that interlock runs unchanged as a command hook.
# The event comes as JSON on stdin; the decision goes out as JSON on stdout.
event=$(cat)
command_is() { printf '%s' "$event" | grep -Eq "\"command\": *\"$1"; }

if command_is 'rm -rf'; then
    echo '{"hookSpecificOutput": {"hookEventName": "PreToolUse",
           "permissionDecision": "deny", "permissionDecisionReason": "rm -rf is blocked"}}'
elif command_is 'git push'; then
    echo '{"hookSpecificOutput": {"hookEventName": "PreToolUse",
           "permissionDecision": "ask", "permissionDecisionReason": "Push to the remote?"}}'
elif command_is 'curl'; then
    echo "no network from this project" >&2
    exit 2
fi
