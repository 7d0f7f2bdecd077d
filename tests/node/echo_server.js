#!/usr/bin/env node
// Echo server on Node's `ws`, for tests/test_client_interop.py.
//
//   node tests/node/echo_server.js [--deflate default|off|on]
//
// Listens on 127.0.0.1, on a free port, and prints on stdout:
//   PORT <port>                      once, when listening
//   CLOSE <path> <code> <reason>     for every connection, when it has closed
// Every message is sent back as it came (text as text, binary as binary).
// A connection to /close/<code>/<reason> is closed by the server at once with that code
// and reason. --deflate: "default" passes no perMessageDeflate option (ws's default),
// "off" passes perMessageDeflate: false, "on" passes perMessageDeflate: true (negotiated
// only when the client offers it). Stops on SIGTERM, SIGINT, or when stdin closes.
'use strict';

const { WebSocketServer } = require('ws');
const wsVersion = require('ws/package.json').version;

const args = process.argv.slice(2);
let deflate = 'default';
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--deflate' && i + 1 < args.length) {
    deflate = args[++i];
  } else {
    process.stderr.write(`unknown argument ${args[i]}\n`);
    process.exit(2);
  }
}
if (!['default', 'off', 'on'].includes(deflate)) {
  process.stderr.write(`--deflate: default, off or on, not ${deflate}\n`);
  process.exit(2);
}

const options = { host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 * 1024 };
if (deflate === 'off') options.perMessageDeflate = false;
if (deflate === 'on') options.perMessageDeflate = true;

const server = new WebSocketServer(options);

server.on('connection', (ws, request) => {
  const path = request.url;
  ws.on('close', (code, reason) => {
    process.stdout.write(`CLOSE ${path} ${code} ${reason.toString()}\n`);
  });
  ws.on('error', (err) => {
    process.stderr.write(`${path}: ${err.message}\n`);
  });
  const match = /^\/close\/(\d+)\/(.*)$/.exec(path);
  if (match) {
    ws.close(Number(match[1]), decodeURIComponent(match[2]));
    return;
  }
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
});

server.on('listening', () => {
  process.stderr.write(`ws ${wsVersion} echo server, perMessageDeflate ${deflate}\n`);
  process.stdout.write(`PORT ${server.address().port}\n`);
});

function stop() {
  for (const ws of server.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
