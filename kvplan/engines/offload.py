"""KV offload tiers: the tokens each host tier holds and the host memory it takes, per stack.

vLLM's native CPU offloading (`--kv-offloading-size`) and SGLang's HiCache (`--hicache-ratio`, `--hicache-size`)
belong to their engines; LMCache and Dynamo KVBM are connectors that several engines load (vLLM's
LMCacheConnectorV1 and DynamoConnector, SGLang's `--enable-lmcache`, TensorRT-LLM's KVBM connector), so the rules
of every host tier live here, in one module, each citing its stack's source.
Each stack counts differently:

- vLLM native: `--kv-offloading-size` GiB in total across the TP x PP workers (config/cache.py:383-387), one
  region of whole chunks (one block of every worker, page-aligned) shared by the workers, in /dev/shm on CUDA
  (v1/kv_offload/cpu/spec.py:99-128, cpu/shared_offload_region.py:125-128 and :167-170). A pure-MLA model at
  TP > 1 (PP 1, one node) stores one copy (distributed/kv_transfer/kv_connector/v1/offloading/config.py:196-208).
  `--kv-offloading-backend lmcache` hands the size to nobody: the standalone LMCache server sizes its own pool
  (config/vllm.py:1176-1181), so kvplan does not size that tier.
- LMCache (in-process, LMCACHE_MAX_LOCAL_CPU_SIZE / LMCACHE_MAX_LOCAL_DISK_SIZE): per rank; every TP rank
  allocates `int(size x 1024**3)` bytes of its own (lmcache 0.5.6 v1/cache_engine.py:2087-2110), holding its
  shard of each token in chunks of 256 tokens (v1/config.py:90) aligned to 4096 bytes
  (v1/memory_management.py:1338). An MLA model is stored once: only the first rank saves (save_only_first_rank,
  on by default for MLA: v1/cache_engine.py:116-122, :173-178). LMCache before 0.3.3 allocated with
  `torch.empty(size, pin_memory=True)` (0.3.2 v1/memory_management.py:1285), which PyTorch's caching host
  allocator rounds up to a power of two (LMCache issue #1147: 4.1 and 5.0 GiB take 8 GiB); 0.3.3 pins the
  exact size with cudaHostRegister (0.3.3 v1/memory_management.py:1373-1375).
- Dynamo KVBM (DYN_KVBM_CPU_CACHE_GB / DYN_KVBM_DISK_CACHE_GB, a connector of vLLM, SGLang and TensorRT-LLM): in
  total across the workers, in GB (1e9): the leader divides the size by the sum of every TP worker's bytes per
  block and each worker allocates that many blocks of its own (ai-dynamo/dynamo@ae2223b
  lib/llm/src/block_manager/distributed/leader.rs `compute_num_blocks` and "For TP, sum bytes_per_block").
- SGLang HiCache: per rank, a host pool of `int(hicache_size x 1e9 // size_per_token)` tokens, else the device
  pool's tokens x hicache_ratio, then whole pages plus one (mem_cache/pool_host/base.py:211-229), of
  `size x size_per_token` bytes (:249), each rank its own (ranks_per_host, :68-81).

Pure arithmetic: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvplan.core.units import MAX_BYTES, format_bytes
from kvplan.errors import Text, UsageError

GIB = 2**30
GB = 10**9
PAGE = 4096  # mmap.PAGESIZE on x86-64 and LMCache's AddressManager.ALIGN_BYTES
LMCACHE_CHUNK = 256  # lmcache v1/config.py:90 chunk_size
LMCACHE_EXACT_PIN = (0, 3, 3)  # the first LMCache release that pins the exact size (cudaHostRegister)
BACKENDS = ("native", "lmcache")  # vllm-0.33.0/vllm/config/cache.py:389-392 KVOffloadingBackend
RAM, DISK = "ram", "disk"
# LMCache's environment (lmcache v1/config.py:96 and :113, read as LMCACHE_<KEY>) -> the plan keys
# and Dynamo KVBM's (ai-dynamo/dynamo lib/llm/src/block_manager/distributed/leader.rs: DYN_KVBM_CPU_CACHE_GB, ...)
OFFLOAD_ENV = {
    "LMCACHE_MAX_LOCAL_CPU_SIZE": "lmcache_max_local_cpu_size",
    "LMCACHE_MAX_LOCAL_DISK_SIZE": "lmcache_max_local_disk_size",
    "DYN_KVBM_CPU_CACHE_GB": "kvbm_cpu_cache_gb",
    "DYN_KVBM_DISK_CACHE_GB": "kvbm_disk_cache_gb",
}

_VLLM, _SGLANG = "vllm", "sglang"
_LMCACHE_ENGINES = (_VLLM, _SGLANG)
_KVBM_ENGINES = (_VLLM, _SGLANG, "tensorrt-llm")  # DynamoConnector (vLLM), SGLang's and TensorRT-LLM's connectors


@dataclass(frozen=True)
class Offload:
    """The offload settings of one deployment, as its stack spells them. None: not set."""

    kv_offloading_size: float | None = None  # vLLM, GiB in total across the workers
    kv_offloading_backend: str = "native"  # vLLM: native or lmcache
    hicache_ratio: float | None = None  # SGLang: host pool / device pool
    hicache_size: float | None = None  # SGLang: GB (1e9) per rank; overrides the ratio
    lmcache_cpu_size: float | None = None  # LMCache max_local_cpu_size: GiB per rank
    lmcache_disk_size: float | None = None  # LMCache max_local_disk_size: GiB per rank
    lmcache_version: str | None = None  # LMCache's release (None: a current one, exact pinning)
    kvbm_cpu_cache_gb: float | None = None  # Dynamo KVBM DYN_KVBM_CPU_CACHE_GB: GB in total across the workers
    kvbm_disk_cache_gb: float | None = None  # Dynamo KVBM DYN_KVBM_DISK_CACHE_GB

    @property
    def given(self) -> bool:
        return any(
            v is not None
            for v in (
                self.kv_offloading_size,
                self.hicache_ratio,
                self.hicache_size,
                self.lmcache_cpu_size,
                self.lmcache_disk_size,
                self.kvbm_cpu_cache_gb,
                self.kvbm_disk_cache_gb,
            )
        )


@dataclass(frozen=True)
class HostInputs:
    """What the tiers are sized from: the engine, its parallel layout, and the KV of the fullest rank.

    `bytes_per_token`: KV bytes one token takes on that rank (its shard of every layer it holds);
    `bytes_per_block`: one block of that rank in every KV-cache group (vLLM's worker_kv_bytes_per_block);
    `device_tokens`: the GPU pool's tokens (SGLang's max_total_num_tokens); `mla`: every cache is an MLA latent;
    `other_caches`: the kinds besides full attention and MLA the model has (sliding window, recurrent state)."""

    engine: str
    tp: int
    pp: int
    bytes_per_token: int
    bytes_per_block: int
    block_size: int
    device_tokens: int
    mla: bool = False
    other_caches: tuple[str, ...] = ()
    shm: bool = True  # vLLM's region is a /dev/shm file (CUDA and XPU; ROCm: a private tensor per worker)


@dataclass(frozen=True)
class HostTier:
    """One tier: where it lives (`medium` ram or disk), the setting that sizes it, the processes on the node that
    allocate it (`ranks`) and their bytes, the tokens it holds (None: kvplan cannot say), and its source."""

    name: str
    medium: str
    setting: str
    ranks: int
    bytes_per_rank: int
    bytes_per_node: int
    tokens: int | None
    shm_bytes: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "medium": self.medium,
            "setting": self.setting,
            "ranks": self.ranks,
            "bytes_per_rank": self.bytes_per_rank,
            "bytes_per_node": self.bytes_per_node,
            "tokens": self.tokens,
            "shm_bytes": self.shm_bytes,
            "source": self.source,
        }


@dataclass(frozen=True)
class HostPlan:
    """The tiers of one deployment and the notes on what kvplan leaves out."""

    tiers: tuple[HostTier, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def ram_bytes(self) -> int:
        """Host RAM of every RAM tier on the node."""
        return sum(t.bytes_per_node for t in self.tiers if t.medium == RAM)

    @property
    def shm_bytes(self) -> int:
        return sum(t.shm_bytes for t in self.tiers)


def round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def pinned_bytes(size: int, version: str | None) -> int:
    """Host bytes LMCache's pinned buffer of `size` bytes takes: the next power of two before LMCache 0.3.3
    (torch.empty(pin_memory=True) through PyTorch's caching host allocator: LMCache issue #1147, 5.0 GiB -> 8 GiB,
    4.0 -> 4, 4.1 -> 8), the size itself from 0.3.3 (cudaHostRegister of a plain tensor)."""
    if size <= 0 or version is None or _version(version) >= LMCACHE_EXACT_PIN:
        return max(0, size)
    return 1 << (size - 1).bit_length()


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.strip().lstrip("v").split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece else ""
        if not digits or not piece[0].isdigit():
            raise UsageError(
                Text("{lmcache_version} must be a release such as 0.3.2, got {v!r}", v=text),
                hint="pass the LMCache version the deployment runs, e.g. 0.3.9",
                field="lmcache_version",
            )
        parts.append(int(digits))
    return tuple(parts)


def check_settings(o: Offload, engine: str) -> None:
    """Refuse settings the engine does not read (a UsageError naming the setting), and values out of range."""
    vllm_only = {"kv_offloading_size": o.kv_offloading_size}
    sglang_only = {"hicache_ratio": o.hicache_ratio, "hicache_size": o.hicache_size}
    lmcache = {"lmcache_cpu_size": o.lmcache_cpu_size, "lmcache_disk_size": o.lmcache_disk_size}
    kvbm = {"kvbm_cpu_cache_gb": o.kvbm_cpu_cache_gb, "kvbm_disk_cache_gb": o.kvbm_disk_cache_gb}
    for owner, settings in (("vLLM", vllm_only), ("SGLang", sglang_only)):
        for name, value in settings.items():
            if value is not None and engine != owner.lower():
                raise UsageError(
                    Text("{" + name + "} is {owner}'s setting, not {engine_name}'s", owner=owner, engine_name=engine),
                    hint=Text("plan with {engine} {owner_id}, or drop it", owner_id=owner.lower()),
                    field=name,
                )
    for name, value in lmcache.items():
        if value is not None and engine not in _LMCACHE_ENGINES:
            raise UsageError(
                Text(
                    "LMCache ({" + name + "}) is modelled with vLLM and SGLang only, not {engine_name}",
                    engine_name=engine,
                ),
                hint=Text("plan with {engine} vllm or sglang, or drop it"),
                field=name,
            )
    for name, value in kvbm.items():
        if value is not None and engine not in _KVBM_ENGINES:
            raise UsageError(
                Text(
                    "Dynamo KVBM ({" + name + "}) is modelled with vLLM, SGLang and TensorRT-LLM, not {engine_name}",
                    engine_name=engine,
                ),
                hint=Text("plan with {engine} vllm, sglang or tensorrt-llm, or drop it"),
                field=name,
            )
    for name, value in {**vllm_only, **sglang_only, **lmcache, **kvbm}.items():
        if value is not None and not value > 0:
            raise UsageError(
                Text("{" + name + "} must be positive, got {v:g}", v=value), hint="pass e.g. 100", field=name
            )
    # GiB (vLLM, LMCache) or GB (SGLang's --hicache-size, KVBM): beyond any machine like every size kvplan reads
    units = {"kv_offloading_size": GIB, "hicache_size": GB, **dict.fromkeys(lmcache, GIB), **dict.fromkeys(kvbm, GB)}
    for name, unit in units.items():
        value = getattr(o, name)
        if value is not None and value * unit > MAX_BYTES:
            raise UsageError(
                Text("{" + name + "} {v:g} is beyond any machine (at most 1 EiB)", v=value),
                hint="pass e.g. 100",
                field=name,
            )
    if o.kv_offloading_backend not in BACKENDS:
        raise UsageError(
            Text(
                "{kv_offloading_backend} must be one of {names}, got {v!r}",
                names=", ".join(BACKENDS),
                v=o.kv_offloading_backend,
            ),
            hint="vLLM 0.33's backends: native (its own CPU offloading) or lmcache",
            field="kv_offloading_backend",
        )
    if o.kv_offloading_backend != "native" and engine != _VLLM:
        raise UsageError(
            Text("{kv_offloading_backend} is vLLM's setting, not {engine_name}'s", engine_name=engine),
            hint=Text("plan with {engine} vllm, or drop it"),
            field="kv_offloading_backend",
        )
    if o.lmcache_version is not None:
        _version(o.lmcache_version)


def vllm_native(o: Offload, i: HostInputs) -> HostTier:
    """vLLM's native CPU tier: `--kv-offloading-size` GiB in total (vllm-0.33.0/vllm/config/vllm.py:1167-1175
    cpu_bytes_to_use = size x 2**30), cut into chunks of one block of every worker (blocks_per_chunk 1,
    offloading/config.py:121), each page-aligned (v1/kv_offload/cpu/spec.py:111-123: num_chunks =
    cpu_bytes // round_up(worker_kv_bytes_per_block x copies, PAGESIZE)); one copy for pure MLA at TP > 1 and PP
    1 (offloading/config.py:196-208, single-node mp). The region is num_chunks x chunk bytes
    (shared_offload_region.py:125), a /dev/shm file on CUDA (:128, checked against its free space :167-170)."""
    assert o.kv_offloading_size is not None
    cpu_bytes = int(o.kv_offloading_size * GIB)
    world = i.tp * i.pp
    copies = 1 if (i.mla and i.tp > 1 and i.pp == 1) else world
    chunk = round_up(i.bytes_per_block * copies, PAGE)
    chunks = cpu_bytes // chunk if chunk else 0
    total = chunks * chunk
    return HostTier(
        name="vllm-cpu",
        medium=RAM,
        setting=f"--kv-offloading-size {o.kv_offloading_size:g}",
        ranks=1,
        bytes_per_rank=total,
        bytes_per_node=total,
        tokens=chunks * i.block_size,
        shm_bytes=total if i.shm else 0,
        source="vllm-0.33.0 config/vllm.py:1167-1175, v1/kv_offload/cpu/spec.py:99-128, "
        "cpu/shared_offload_region.py:125-128 (one region for all workers, in total across TP x PP)",
    )


def lmcache_tier(o: Offload, i: HostInputs, medium: str) -> HostTier:
    """LMCache's local CPU (or disk) tier, per rank: `size` GiB each (lmcache 0.5.6 v1/cache_engine.py:2087-2110,
    int(max_local_cpu_size x 1024**3)), chunks of 256 tokens of that rank's shard, 4096-byte aligned; MLA saved by
    the first rank only (v1/cache_engine.py:116-122, :173-178). RAM: pinned, rounded up to a power of two before
    LMCache 0.3.3 (`pinned_bytes`). The disk tier (local_disk, max_local_disk_size) is per rank too
    (local_disk_path_sharding by_gpu, v1/config.py:108-111) and unpinned."""
    size = o.lmcache_cpu_size if medium == RAM else o.lmcache_disk_size
    assert size is not None
    requested = int(size * GIB)
    ranks = 1 if i.mla else i.tp * i.pp
    chunk = round_up(LMCACHE_CHUNK * i.bytes_per_token, PAGE)
    tokens = (requested // chunk) * LMCACHE_CHUNK if chunk else 0
    held = pinned_bytes(requested, o.lmcache_version) if medium == RAM else requested
    key = "max_local_cpu_size" if medium == RAM else "max_local_disk_size"
    return HostTier(
        name=f"lmcache-{'cpu' if medium == RAM else 'disk'}",
        medium=medium,
        setting=f"LMCACHE_{key.upper()}={size:g}",
        ranks=ranks,
        bytes_per_rank=held,
        bytes_per_node=held * ranks,
        tokens=tokens,
        shm_bytes=0,
        source="lmcache 0.5.6 v1/cache_engine.py:2087-2110 (per rank), v1/config.py:90 (chunks of 256); "
        + ("MLA: the first rank only (v1/cache_engine.py:116-122)" if i.mla else "every rank its own shard")
        + ("; pinned rounded up to a power of two before 0.3.3 (LMCache #1147)" if medium == RAM else ""),
    )


def kvbm_tier(o: Offload, i: HostInputs, medium: str) -> HostTier:
    """Dynamo KVBM's host (G2, pinned) or disk (G3) tier (ai-dynamo/dynamo@ae2223b
    lib/llm/src/block_manager/distributed/leader.rs): num_blocks = int(cache_size_gb x 1e9 / bytes_per_block), where
    bytes_per_block is the sum over the TP workers of each worker's block ("For TP, sum bytes_per_block"); every
    worker then holds num_blocks blocks of its own, so the size is the total across the workers and the tier holds
    num_blocks x block_size tokens."""
    size = o.kvbm_cpu_cache_gb if medium == RAM else o.kvbm_disk_cache_gb
    assert size is not None
    world = i.tp * i.pp
    per_block = i.bytes_per_block * world
    blocks = int(size * GB / per_block) if per_block else 0
    total = blocks * per_block
    key = "CPU" if medium == RAM else "DISK"
    return HostTier(
        name=f"kvbm-{'cpu' if medium == RAM else 'disk'}",
        medium=medium,
        setting=f"DYN_KVBM_{key}_CACHE_GB={size:g}",
        ranks=world,
        bytes_per_rank=blocks * i.bytes_per_block,
        bytes_per_node=total,
        tokens=blocks * i.block_size,
        shm_bytes=0,
        source="ai-dynamo/dynamo@ae2223b lib/llm/src/block_manager/distributed/leader.rs compute_num_blocks "
        "(GB x 1e9 / the workers' summed bytes per block: the total across TP)",
    )


def hicache_tier(o: Offload, i: HostInputs) -> HostTier:
    """SGLang's HiCache host pool, per rank (sglang-0.5.23 srt/mem_cache/pool_host/base.py:211-229): tokens =
    int(hicache_size x 1e9 // size_per_token) when --hicache-size is given, else int(device tokens x
    hicache_ratio); then page_num = size // page_size + 1 and size = page_num x page_size; bytes = size x
    size_per_token (:249). Every TP x PP rank holds its own (ranks_per_host, :68-81)."""
    page = max(1, i.block_size)
    if o.hicache_size is not None:
        size = int(o.hicache_size * GB // i.bytes_per_token) if i.bytes_per_token else 0
        setting = f"--hicache-size {o.hicache_size:g}"
    else:
        assert o.hicache_ratio is not None
        size = int(i.device_tokens * o.hicache_ratio)
        setting = f"--hicache-ratio {o.hicache_ratio:g}"
    tokens = (size // page + 1) * page
    per_rank = tokens * i.bytes_per_token
    ranks = i.tp * i.pp
    if per_rank * ranks > MAX_BYTES:
        name = "hicache_ratio" if o.hicache_size is None else "hicache_size"
        raise UsageError(
            Text("{" + name + "} {v:g} makes host pools beyond any machine (at most 1 EiB)", v=getattr(o, name)),
            hint="pass e.g. 2",
            field=name,
        )
    return HostTier(
        name="hicache-host",
        medium=RAM,
        setting=setting,
        ranks=ranks,
        bytes_per_rank=per_rank,
        bytes_per_node=per_rank * ranks,
        tokens=tokens,
        shm_bytes=0,
        source="sglang-0.5.23 srt/mem_cache/pool_host/base.py:211-229 and :249 (per rank, whole pages plus one)",
    )


def serve_flags(o: Offload | None, engine: str) -> str:
    """The offload options on `engine`'s serve command (" --kv-offloading-size 100"), "" where none apply. LMCache
    is configured by its environment (LMCACHE_MAX_LOCAL_CPU_SIZE) and a connector, not by a flag kvplan prints."""
    if o is None:
        return ""
    if engine == _VLLM and o.kv_offloading_size is not None:
        backend = "" if o.kv_offloading_backend == "native" else f" --kv-offloading-backend {o.kv_offloading_backend}"
        return f" --kv-offloading-size {o.kv_offloading_size:g}{backend}"
    if engine == _SGLANG and (o.hicache_ratio is not None or o.hicache_size is not None):
        sized = f" --hicache-size {o.hicache_size:g}" if o.hicache_size is not None else ""
        ratio = f" --hicache-ratio {o.hicache_ratio:g}" if o.hicache_ratio is not None and not sized else ""
        return " --enable-hierarchical-cache" + (sized or ratio)
    return ""


def backend_notes(o: Offload | None) -> list[str]:
    """What `--kv-offloading-backend lmcache` does without `--kv-offloading-size`: nothing, in vLLM 0.33 (said, so
    that a backend asked for is never ignored silently)."""
    if o is None or o.kv_offloading_backend != "lmcache" or o.kv_offloading_size is not None:
        return []
    given = o.lmcache_cpu_size is not None or o.lmcache_disk_size is not None
    return [
        "--kv-offloading-backend lmcache without --kv-offloading-size offloads nothing: vLLM 0.33 turns KV "
        "offloading on only when --kv-offloading-size is set (config/vllm.py:1157-1159), so it loads no LMCache "
        "connector; with a size it loads LMCacheMPConnector, whose standalone LMCache server sizes its own pool "
        "(the size is not passed on: config/vllm.py:1176-1181), which kvplan does not size"
        + (
            "; the LMCache tiers planned here are in-process LMCache's (--lmcache-cpu-size, --lmcache-disk-size)"
            if given
            else ""
        )
    ]


def host_plan(o: Offload, i: HostInputs) -> HostPlan:
    """Every tier `o` configures for engine `i.engine`, with the notes on what kvplan leaves out."""
    check_settings(o, i.engine)
    tiers: list[HostTier] = []
    notes: list[str] = backend_notes(o)
    if o.kv_offloading_size is not None:
        if o.kv_offloading_backend == "native":
            tiers.append(vllm_native(o, i))
            tier = tiers[-1]
            if tier.shm_bytes:
                notes.append(
                    f"vLLM's CPU offload region ({format_bytes(tier.shm_bytes)}) is a file in /dev/shm "
                    "(v1/kv_offload/cpu/shared_offload_region.py:128): a container needs /dev/shm at least that "
                    "large (docker --shm-size or --ipc=host; Kubernetes: an emptyDir with medium Memory), and "
                    "it counts against the container's memory limit"
                )
        else:
            notes.append(
                "--kv-offloading-backend lmcache: vLLM 0.33 passes --kv-offloading-size to no one "
                "(config/vllm.py:1176-1181); the standalone LMCache server sizes its own pool, which kvplan "
                "does not size"
            )
    if o.lmcache_cpu_size is not None:
        tiers.append(lmcache_tier(o, i, RAM))
    if o.lmcache_disk_size is not None:
        tiers.append(lmcache_tier(o, i, DISK))
    if o.kvbm_cpu_cache_gb is not None:
        tiers.append(kvbm_tier(o, i, RAM))
    if o.kvbm_disk_cache_gb is not None:
        tiers.append(kvbm_tier(o, i, DISK))
        cpu = o.kvbm_cpu_cache_gb
        if cpu is not None and o.kvbm_disk_cache_gb < cpu:
            notes.append(
                "DYN_KVBM_DISK_CACHE_GB is below DYN_KVBM_CPU_CACHE_GB: blocks offloaded from the CPU tier to disk "
                "find less room there than they left"
            )
    if o.hicache_ratio is not None or o.hicache_size is not None:
        tiers.append(hicache_tier(o, i))
        if o.hicache_ratio is not None and o.hicache_size is not None:
            notes.append("--hicache-size overrides --hicache-ratio (SGLang server_args: hicache_size)")
    if tiers and i.other_caches:
        kinds = ", ".join(i.other_caches)
        notes.append(
            f"the host tiers are sized from the full-attention/MLA KV only: this model's {kinds} layers have host "
            "pools or layouts of their own (SGLang's Mamba and SWA host pools, vLLM's hybrid groups) that kvplan "
            "does not size"
        )
    connectors = [t for t in tiers if t.name.startswith(("lmcache", "kvbm"))]
    if i.engine == _VLLM and connectors and i.other_caches:
        notes.append(
            "vLLM turns its hybrid KV-cache allocator off for a connector without SupportsHMA (vllm-0.33.0 "
            "config/vllm.py:2257-2276; LMCacheConnectorV1 has none, kv_connector/v1/lmcache_connector.py:68): "
            "sliding-window layers then hold their whole length and hybrid SSM models fail at start-up; kvplan's "
            "GPU figures assume the allocator on"
        )
    small = [t.name for t in tiers if t.tokens is not None and 0 < t.tokens < i.device_tokens]
    if small:
        notes.append(
            f"{', '.join(small)} {'hold' if len(small) > 1 else 'holds'} fewer tokens than the GPU's KV cache "
            f"({i.device_tokens:,}): blocks evicted "
            "from the GPU evict each other there (SGLang warns of the same: mem_cache/pool_host/base.py:238-245)"
        )
    if any(t.tokens is not None and t.tokens == 0 for t in tiers):
        notes.append("a host tier holds no tokens: its size is below one chunk of this model's KV")
    return HostPlan(tuple(tiers), tuple(notes))


@dataclass(frozen=True)
class HostVerdict:
    """The host memory against the tiers: `ok` False when a RAM tier (or /dev/shm) would run out, `detail`
    naming the tier; `ok` None when the host memory is unknown."""

    ok: bool | None
    detail: str | None = None


def judge(plan: HostPlan, host_memory: int | None, shm: int | None = None) -> HostVerdict:
    """RAM tiers, in order, against the host's memory per node (MemTotal, or the cgroup limit where lower); the
    /dev/shm tiers against /dev/shm where known. The tier that crosses the limit is named."""
    if not plan.tiers:
        return HostVerdict(None)
    if shm is not None and plan.shm_bytes > shm:
        names = " + ".join(f"{t.name} {format_bytes(t.shm_bytes)}" for t in plan.tiers if t.shm_bytes)
        return HostVerdict(False, f"/dev/shm: {names} does not fit in {format_bytes(shm)} of /dev/shm")
    if host_memory is None:
        return HostVerdict(None)
    used = 0
    for tier in (t for t in plan.tiers if t.medium == RAM):
        used += tier.bytes_per_node
        if used > host_memory:
            per = f" ({tier.ranks} ranks x {format_bytes(tier.bytes_per_rank)})" if tier.ranks > 1 else ""
            before = (
                f" after {format_bytes(used - tier.bytes_per_node)} of other tiers"
                if used > tier.bytes_per_node
                else ""
            )
            return HostVerdict(
                False,
                f"host RAM: {tier.name} ({tier.setting}) needs {format_bytes(tier.bytes_per_node)} per node{per}"
                f"{before}, the host has {format_bytes(host_memory)}",
            )
    return HostVerdict(True)
