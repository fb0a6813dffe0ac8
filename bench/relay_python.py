"""Python column of the stream relay benchmark (crates/core/benches/relay.rs).

Streams one chat through the official Ollama Python client per "run" line read from stdin and
answers "<wall ns> <cpu ns> <chunks>", timed here so interpreter start-up and imports are not
counted. Usage: relay_python.py URL MODEL (needs `pip install ollama`).
"""

import sys
import time

import ollama


def main() -> int:
    url, model = sys.argv[1], sys.argv[2]
    client = ollama.Client(host=url)
    messages = [{"role": "user", "content": "Write a long story."}]
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        chunks = 0
        content = 0
        for part in client.chat(model=model, messages=messages, stream=True, keep_alive=-1):
            chunks += 1
            content += len(part.message.content or "")
        wall, cpu = time.perf_counter_ns() - t0, time.thread_time_ns() - c0
        print(f"{wall} {cpu} {chunks}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
