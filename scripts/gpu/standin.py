"""A stand-in model runner: holds GPU memory through torch and optionally burns CPU.

Started through a symlink named `llama-server` to the Python interpreter, with the same
`--model <blob>` argument Ollama gives its runner, it is what yollayah's process scan and NVML
see of a real runner, with the held memory under our control:

    llama-server standin.py --model BLOB --hold-mib N [--burn-threads T] [-c 4096 -np 1 ...]

Started as plain `python3 standin.py --hold-mib N` it is an unrelated GPU process.
--hold-mib 0 never touches CUDA, so NVML does not list the process at all.
--hold-mib is the total NVML shows for the process (CUDA context included).
Prints one `ready pid=...` line, then sleeps until SIGTERM/SIGINT.
"""
import argparse
import os
import signal
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="")
ap.add_argument("--hold-mib", type=int, default=0)
ap.add_argument("--burn-threads", type=int, default=0)
args, _ = ap.parse_known_args()  # llama-server flags (-c, -np, -ngl) are only for show

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())



def nvml_mib():
    """What NVML attributes to this process, in MiB; None if it cannot tell."""
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
            if p.pid == os.getpid() and p.usedGpuMemory is not None:
                return p.usedGpuMemory >> 20
    except Exception:  # noqa: BLE001  any NVML trouble: fall back to a fixed context size
        return None
    return None


held = None
context_mib = 0
if args.hold_mib > 0:
    import torch

    # --hold-mib is the total NVML should show, CUDA context included, so that "holds 40 %"
    # means 40 % as yollayah reads it.
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    context_mib = nvml_mib() or 512
    want = max(args.hold_mib - context_mib, 1)
    held = torch.ones(want << 20, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()

if args.burn_threads > 0:
    import torch

    # Matrix products release the GIL and run on torch's intra-op pool: T busy cores in one
    # process, like a llama-server computing on the CPU.
    torch.set_num_threads(args.burn_threads)
    a = torch.randn(768, 768)

    def burn():
        while not stop.is_set():
            torch.mm(a, a)

    threading.Thread(target=burn, daemon=True).start()

print(f"ready pid={os.getpid()} target_mib={args.hold_mib} context_mib={context_mib} "
      f"nvml_mib={nvml_mib() if args.hold_mib else 0} burn_threads={args.burn_threads} "
      f"model={args.model}", flush=True)
while not stop.is_set():
    time.sleep(0.2)
sys.exit(0)
