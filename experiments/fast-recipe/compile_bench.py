"""fastnet's training step eager against torch.compile (default mode), contiguous and channels-last.

    python experiments/fast-recipe/compile_bench.py

Batch 128, bf16 autocast, torch's default threads (2 on a 2-core machine); the whole stem trains. "warm" is the first 5 steps
(compilation), "step" the mean of the next 30. Two rounds.
"""
import time, torch, torch.nn.functional as F, sys
from tinycifar.models import create_model
torch.manual_seed(0)
def bench(compiled, cl, n=30):
    m = create_model("fastnet")
    if cl: m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.85, nesterov=True)
    f = torch.compile(m) if compiled else m
    x = torch.randn(128,3,32,32); y = torch.randint(0,10,(128,))
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = f(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    t=time.perf_counter()
    for _ in range(5): step()
    warm=time.perf_counter()-t
    t=time.perf_counter()
    for _ in range(n): step()
    return warm, (time.perf_counter()-t)/n*1000
for rep in range(2):
  for c in (False, True):
    for cl in (False, True):
        w, s = bench(c, cl)
        print(f"compile={c} channels_last={cl} warm {w:.1f}s step {s:.1f} ms", flush=True)
