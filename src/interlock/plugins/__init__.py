"""The built-in plugins, one module each; configs name them by their entry point.

- `content-policy` (`content_policy.ContentPolicy`): redacts personal data and secrets,
  and blocks by content.
- `tool-guard` (`tool_guard.ToolGuard`): allows, denies or asks about tool calls by rules
  on the tool's name and arguments.

Importing this package imports none of them: each loads when a config or a host uses it.
"""
