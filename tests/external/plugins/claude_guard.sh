#!/bin/sh
# A Claude Code PreToolUse command hook, used by interlock unchanged.
# Reads the event JSON on stdin; answers with Claude Code's hook output on stdout.
# Plain POSIX sh and grep: no jq.
event=$(cat)

field_is() { # field_is NAME VALUE-PREFIX: does "NAME": "VALUE-PREFIX... appear?
    printf '%s' "$event" | grep -Eq "\"$1\": *\"$2"
}

field_is hook_event_name PreToolUse || exit 0
field_is tool_name Bash || exit 0

if field_is command 'rm -rf'; then
    cat <<'JSON'
{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
 "permissionDecisionReason": "Destructive command blocked by claude_guard.sh"}}
JSON
elif field_is command 'git push'; then
    cat <<'JSON'
{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "ask",
 "permissionDecisionReason": "Pushing changes: are you sure?"}}
JSON
elif field_is command 'ls'; then
    cat <<'JSON'
{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow",
 "updatedInput": {"command": "ls --color=never"}}, "systemMessage": "rewrote ls"}
JSON
elif field_is command 'curl'; then
    echo "network access is not allowed from this project" >&2
    exit 2
elif field_is command 'legacy'; then
    echo '{"decision": "block", "reason": "legacy decision shape"}'
elif field_is command 'broken'; then
    echo "internal failure in the hook" >&2
    exit 1
elif field_is command 'sleep'; then
    # Runs a child that would outlive a careless kill: the whole group must go.
    sleep 600 &
    echo "$!" > "${HOOK_CHILD_PID_FILE:-/dev/null}"
    echo "sleeping" >&2
    wait
fi
exit 0
