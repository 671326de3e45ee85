"""The built-in plugins, one module each; configs name them by their entry point.

- `content-policy` (`content_policy.ContentPolicy`): redacts personal data and secrets,
  and blocks by content.
- `tool-guard` (`tool_guard.ToolGuard`): allows, denies or asks about tool calls by rules
  on the tool's name and arguments.
- `token-budget` (`token_budget.TokenBudget`): budgets of tokens and cost per session and
  per tag; blocks model calls past them, warns before.
- `task-reminder` (`task_reminder.TaskReminder`): reminds the model of open todo items
  through system items.
- `rate-limit` (`rate_limit.RateLimit`): calls per interval per tool or model, per session
  or across sessions; blocks or waits.
- `audit-log` (`audit_log.AuditLog`): every hook outcome as a JSON line, with fsync
  policy and size-based rotation.
- `profiler` (`profiler.Profiler`): time per model call, tool call, plugin and hook, as a
  table at the end of the session.

Importing this package imports none of them: each loads when a config or a host uses it.
"""
