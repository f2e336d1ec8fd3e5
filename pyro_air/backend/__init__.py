"""The floor beneath everything: how the CPU runs the numbers (docs/design.md, "Layers").

- ``choices``: the CPU's identity, the cache of measured choices and its lock; knows no kernel.
- ``tanh``: the CPU tanh kernel (``torch.tanh`` or 2 sigmoid(2x) - 1), its choice and its modules.
- ``onednn``: dense layers through oneDNN, the choice of library for dense layers, and the
  evaluation chunk size that follows from it.
- ``nets``: the network builders models and guides share (``MLP`` runs on the chosen kernels).
- ``precision``: float32 or bf16 autocast, and whether bf16 is native here.
- ``openmp``: per-thread CPU state on every OpenMP pool thread; denormals flushed to zero.
- ``allocator``: freed memory kept for reuse (glibc).
- ``threads``: thread counts from the environment and the machine.
- ``report``: what was chosen and why; pinning the choices a zoo entry recorded.

Nothing here imports the model/guide contract (``pyro_air.core``) or anything above it.
"""
