"""Adapters: interlock plugins governing agents built on other frameworks.

One module per host, each behind its own extra and importing its framework lazily:
`interlock.adapters.langchain`, `.pydantic_ai`, `.openai_agents`, `.mcp`, `.claude_agent`
(and `.claude_code`, behind `interlock claude-hook`, with no extra). They share a
private bridge (sessions keyed by the host's ids, sync and async firing, decisions that
never raise into the host). See docs/adapters.md.
"""
