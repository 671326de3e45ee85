#!/usr/bin/env node
// An interlock plugin in JavaScript, over stdio: newline-delimited JSON-RPC 2.0.
// Written from docs/protocol.md alone. Blocks `rm -rf`, tags the arguments of other
// shell calls, and asks for a system item when it sees a "todo" tool.
// Test behaviours: tool "hang" is never answered; tool "crash" ends the process; tool
// "spawn" starts a background child (its pid on stderr) that the host must end with it.
// Calls before `initialize` are refused, as a plugin that needs its config would.
"use strict";
const { spawn } = require("child_process");
let ready = false;
const readline = require("readline");

const input = readline.createInterface({ input: process.stdin });
const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const reply = (id, result) => send({ jsonrpc: "2.0", id, result });

function invoke(hook, payload, context) {
  if (hook !== "pre_tool_call") return { action: { type: "continue" } };
  const command = String(payload.arguments.command || "");
  if (payload.tool_name === "shell" && command.includes("rm -rf")) {
    return { action: { type: "block", reason: "guard.js: rm -rf is not allowed" } };
  }
  if (payload.tool_name === "todo") {
    return {
      action: { type: "continue" },
      requests: [
        { capability: "system_items", kind: "reminder", text: "finish the todo list" },
        { capability: "notify", text: "todo seen", level: "info" },
      ],
    };
  }
  const args = Object.assign({}, payload.arguments, { checked_by: "guard.js" });
  return { action: { type: "modify", payload: Object.assign({}, payload, { arguments: args }) } };
}

input.on("line", (line) => {
  const message = JSON.parse(line);
  const { id, method, params } = message;
  if (method === "initialize") {
    ready = true;
    reply(id, {
      protocol: 1,
      name: "guard-js",
      version: "1.0.0",
      hooks: [{ name: "pre_tool_call", priority: -10 }],
      capabilities: ["system_items", "notify"],
    });
  } else if (method === "invoke" && !ready) {
    send({ jsonrpc: "2.0", id, error: { code: -32002, message: "not initialized" } });
  } else if (method === "invoke") {
    const tool = params.payload.tool_name;
    if (tool === "spawn") {
      const child = spawn("sleep", ["600"], { stdio: "ignore" });
      process.stderr.write("guard.js: child " + child.pid + "\n");
    }
    if (tool === "hang") {
      process.stderr.write("guard.js: hanging on purpose\n");
      return;
    }
    if (tool === "crash") process.exit(3);
    reply(id, invoke(params.hook, params.payload, params.context));
  } else if (method === "shutdown") {
    reply(id, null);
    process.exit(0);
  } else {
    send({ jsonrpc: "2.0", id, error: { code: -32601, message: "no method " + method } });
  }
});
