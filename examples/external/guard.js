#!/usr/bin/env node
// An interlock plugin in JavaScript: JSON-RPC 2.0 over stdio, one message per line.
// Blocks `rm -rf`, tags every other shell call, and asks the host for a reminder.
"use strict";
const lines = require("readline").createInterface({ input: process.stdin });
const reply = (id, result) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id, result }) + "\n");

function onPreToolCall(call) {
  const command = String(call.arguments.command || "");
  if (call.tool_name === "shell" && command.includes("rm -rf")) {
    return { action: { type: "block", reason: "rm -rf is not allowed" } };
  }
  const tagged = { ...call, arguments: { ...call.arguments, checked_by: "guard.js" } };
  return {
    action: { type: "modify", payload: tagged },
    requests: [{ capability: "system_items", kind: "reminder", text: "run the tests" }],
  };
}

lines.on("line", (line) => {
  const { id, method, params } = JSON.parse(line);
  if (method === "initialize") {
    reply(id, { protocol: 1, name: "guard-js", version: "1.0.0",
                hooks: ["pre_tool_call"], capabilities: ["system_items"] });
  } else if (method === "invoke") {
    reply(id, onPreToolCall(params.payload));
  } else if (method === "shutdown") {
    reply(id, null);
    process.exit(0);
  }
});
