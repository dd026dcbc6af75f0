"""One fastnet training step at T threads and batch B (stem frozen, bf16, channels-last).

    python experiments/fast-recipe/threads_bench.py 2 128
    python experiments/fast-recipe/threads_bench.py 1 64 & python experiments/fast-recipe/threads_bench.py 1 64

The second line is two processes side by side, as `torchrun --nproc_per_node 2` runs them.
"""
import sys, torch
from tinycifar.models.fastnet import FastNet
from step_timing import bf16_step, frozen_stem, ms_per_step
threads, batch = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
step = bf16_step(frozen_stem(FastNet()), batch)
for _ in range(10): step()
res = [ms_per_step(step, 40) for rep in range(3)]
print(f"threads {threads} batch {batch}: ms/step {' '.join(f'{v:.1f}' for v in res)}", flush=True)
