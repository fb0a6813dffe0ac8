#!/usr/bin/env python3
"""A stand-in Ollama for tray-idle.sh: up, no model loaded (`/api/ps` empty), nothing pulled.

The watchdog reads the GPU (and so loads NVML) only while Ollama answers; the GPU machine has
no Ollama. Usage: fake-ollama.py [PORT] (default 11434, on 127.0.0.1)."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWERS = {
    "/api/ps": {"models": []},
    "/api/tags": {"models": []},
    "/api/version": {"version": "0.12.6"},
}


class Handler(BaseHTTPRequestHandler):
    def answer(self):
        body = json.dumps(ANSWERS.get(self.path.split("?")[0], {})).encode()
        self.send_response(200 if self.path.split("?")[0] in ANSWERS else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = answer
    do_HEAD = answer

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer()

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 11434
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
