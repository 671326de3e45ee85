#!/bin/sh
# A Claude Code UserPromptSubmit and SessionStart hook, run by interlock unchanged.
# What it prints with exit 0 is added to the model's context.
event=$(cat)
case "$event" in
*'"hook_event_name": "UserPromptSubmit"'*)
    echo "Project folder: $CLAUDE_PROJECT_DIR. Answer in English."
    ;;
*'"hook_event_name": "SessionStart"'*)
    echo "Open issues: 3"
    ;;
esac
exit 0
