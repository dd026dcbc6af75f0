"""fastnet's training step eager against torch.compile (default mode), contiguous and channels-last.

    python experiments/fast-recipe/compile_bench.py

Batch 128, bf16 autocast, torch's default threads (2 on a 2-core machine); the whole stem trains. "warm" is the first 5 steps
(compilation), "step" the mean of the next 30. Two rounds.
"""
import time, torch
from tinycifar.models import create_model
from step_timing import bf16_step, ms_per_step
torch.manual_seed(0)
def bench(compiled, cl, n=30):
    m = create_model("fastnet")
    if cl: m = m.to(memory_format=torch.channels_last)
    step = bf16_step(m, 128, channels_last=cl, run=torch.compile(m) if compiled else None)
    t=time.perf_counter()
    for _ in range(5): step()
    warm=time.perf_counter()-t
    return warm, ms_per_step(step, n)
for rep in range(2):
  for c in (False, True):
    for cl in (False, True):
        w, s = bench(c, cl)
        print(f"compile={c} channels_last={cl} warm {w:.1f}s step {s:.1f} ms", flush=True)
