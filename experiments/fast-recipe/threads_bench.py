"""One fastnet training step at T threads and batch B (stem frozen, bf16, channels-last).

    python experiments/fast-recipe/threads_bench.py 2 128
    python experiments/fast-recipe/threads_bench.py 1 64 & python experiments/fast-recipe/threads_bench.py 1 64

The second line is two processes side by side, as `torchrun --nproc_per_node 2` runs them.
"""
import sys, time, torch, torch.nn.functional as F
from tinycifar.models.fastnet import FastNet
threads, batch = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
m = FastNet().to(memory_format=torch.channels_last)
for p in m.whiten.parameters(): p.requires_grad_(False)
ps = [p for p in m.parameters() if p.requires_grad]
opt = torch.optim.SGD(ps, lr=0.01, momentum=0.85, nesterov=True)
x = torch.randn(batch,3,32,32).contiguous(memory_format=torch.channels_last); y = torch.randint(0,10,(batch,))
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    loss = F.cross_entropy(out.float(), y)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
for _ in range(10): step()
res=[]
for rep in range(3):
    t=time.perf_counter()
    for _ in range(40): step()
    res.append((time.perf_counter()-t)/40*1000)
print(f"threads {threads} batch {batch}: ms/step {' '.join(f'{v:.1f}' for v in res)}", flush=True)
