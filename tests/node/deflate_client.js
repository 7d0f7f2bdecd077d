#!/usr/bin/env node
// A WebSocket client on Node's `ws` with perMessageDeflate: true, driven over stdin/stdout,
// for tests/test_deflate_interop.py.
//
//   node tests/node/deflate_client.js <url>
//
// One JSON object per line each way; message data is base64 (text as its UTF-8 bytes).
// stdin (commands):
//   {"op": "send", "data": b64, "binary": bool}            one message
//   {"op": "fragments", "parts": [b64...], "binary": bool}   one message, a frame per part
//   {"op": "close", "code": int, "reason": str}
// stdout (events):
//   {"event": "open", "extensions": <the 101's Sec-WebSocket-Extensions or null>}
//   {"event": "message", "data": b64, "binary": bool}
//   {"event": "close", "code": int, "reason": str}         then the process exits
//   {"event": "error", "message": str}
'use strict';

const readline = require('readline');
const WebSocket = require('ws');

const url = process.argv[2];
if (!url) {
  process.stderr.write('usage: deflate_client.js <url>\n');
  process.exit(2);
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const ws = new WebSocket(url, { perMessageDeflate: true, maxPayload: 64 * 1024 * 1024, handshakeTimeout: 10000 });
let extensions = null;

ws.on('upgrade', (response) => {
  extensions = response.headers['sec-websocket-extensions'] || null;
});
ws.on('open', () => emit({ event: 'open', extensions }));
ws.on('message', (data, isBinary) => emit({ event: 'message', data: data.toString('base64'), binary: isBinary }));
ws.on('error', (err) => emit({ event: 'error', message: err.message }));
ws.on('close', (code, reason) => {
  emit({ event: 'close', code, reason: reason.toString() });
  process.exit(0);
});

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.op === 'send') {
    ws.send(Buffer.from(cmd.data, 'base64'), { binary: cmd.binary });
  } else if (cmd.op === 'fragments') {
    cmd.parts.forEach((part, i) => {
      ws.send(Buffer.from(part, 'base64'), { binary: cmd.binary, fin: i === cmd.parts.length - 1 });
    });
  } else if (cmd.op === 'close') {
    ws.close(cmd.code, cmd.reason);
  } else {
    emit({ event: 'error', message: `unknown op ${cmd.op}` });
  }
});
input.on('close', () => {
  if (ws.readyState === WebSocket.OPEN) ws.close(1000, '');
  setTimeout(() => process.exit(0), 2000).unref();
});
