"""The edit-loop figure of ci/benchmark.py (`--edit-loop`): edit one line of
mm/userfaultfd.c in a user's checkout, then, side by side in one run,

  (a) `orch run --tree CHECKOUT` (apply, config, build, selftests, rootfs, boot, tests);
  (b) the floor: bare `make` (incremental, in the checkout's own build dir), a bare QEMU
      boot of that image with orch's initramfs (same argv), and the same test binaries run
      over one `ssh` (OpenSSH client).

The checkout is a clone of orch's default tree with the default series committed on top, so
both sides build the default kernel. Each side compiles an edit never compiled before (a
unique comment line: ccache cannot hit), and both compile through ccache: the floor's build
dir was first built with `CC="ccache gcc"` (all hits, untimed), and an incremental make
must keep the CC its objects were built with.

The edit is left uncommitted (`COMMIT_EDIT = False`): orch builds it through its dirty-tree
path (`+dirty`), as a developer's edit-and-run does. True measures a committed edit instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# True: the edit is a commit in the checkout (orch builds the checkout's HEAD).
# False: the edit is left on disk, uncommitted (orch's dirty-tree path).
COMMIT_EDIT = False
EDITED = "mm/userfaultfd.c"


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def prepare_checkout(where: Path) -> Path:
    """A user's checkout: the default tree with the default series as commits (kept in
    `where` between runs of the benchmark)."""
    from orchestrator.base.runner import Runner
    from orchestrator.kernel import tree as treemod

    co = where / "linux"
    ready = co / ".git" / "orch-bench-ready"
    if ready.exists():
        return co
    shutil.rmtree(co, ignore_errors=True)  # an interrupted preparation
    shared = treemod.resolve(None, Runner(), progress=print)
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(shared.repo),
                    str(co)], check=True)
    git(co, "checkout", "-q", "-B", "main", "orch-import")  # the import, not orch's HEAD
    patches = sorted((ROOT / "patches" / "uffd-move").glob("0*.patch"))
    patches = [p for p in patches if not p.name.startswith("0000-")]
    git(co, "am", "-q", "-3", *map(str, patches))
    # The floor's build dirs are not an edit (orch's dirty-tree path skips ignored files).
    (co / ".git" / "info").mkdir(exist_ok=True)
    with open(co / ".git" / "info" / "exclude", "a") as f:
        f.write("/.bench-build-*\n")
    ready.write_text("")
    return co


def edit(co: Path, side: str) -> str:
    """One changed line, never compiled before; committed or not (COMMIT_EDIT)."""
    token = f"{side}-{uuid.uuid4().hex[:8]}"
    f = co / EDITED
    lines = f.read_text().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.startswith("#include"))
    mark = "/* orch edit-loop benchmark: "
    if lines[at - 1].startswith(mark):
        lines[at - 1] = f"{mark}{token} */\n"
    else:
        lines.insert(at, f"{mark}{token} */\n")
    f.write_text("".join(lines))
    if COMMIT_EDIT:
        git(co, "commit", "-q", "-a", "-m", f"edit {token}")
    return token


def orch_run(a, co: Path, out: Path) -> tuple[float, dict]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "orchestrator", "run", "--arch", a.name,
                        "--tree", str(co), "--series", "none", "-o", str(out), "-q"],
                       cwd=ROOT)
    took = time.monotonic() - t0
    meta = json.loads((out / "metadata.json").read_text())
    if r.returncode != 0:
        print(f"  (orch run exited {r.returncode})")
    return took, meta


def bare_env(a) -> tuple[list[str], dict]:
    """make's arguments beyond the build dir, and its environment: orch's ccache."""
    from orchestrator.kernel import build
    from orchestrator.store import cache

    env = dict(os.environ, **build.REPRO_ENV, CCACHE_DIR=str(cache.subdir("ccache")),
               CCACHE_NOHASHDIR="1", **build.ccache_mode())
    return [f"CC=ccache {a.cc()}"], env


def build_dir(co: Path, a) -> Path:
    """The checkout's own build dir, one level down as orch's are (`make O=`): the compiler
    command lines are then the same as orch's, and its first build hits orch's ccache."""
    return co / f".bench-build-{a.name}"


def bare_make(a, co: Path, jobs: int, config: Path | None = None) -> float:
    from orchestrator.kernel import kconfig

    bd = build_dir(co, a)
    if config is not None:
        bd.mkdir(parents=True, exist_ok=True)
        shutil.copy(config, bd / ".config")
    extra, env = bare_env(a)
    env["CCACHE_BASEDIR"] = str(co)
    argv = kconfig.make_argv(a, co, bd, [a.image], jobs=jobs) + extra
    t0 = time.monotonic()
    with open(co / f".bench-build-{a.name}.log", "a") as log:
        subprocess.run(argv, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    return time.monotonic() - t0


def bare_boot_and_test(a, image: Path, initrd: Path, tests: list[str]) -> tuple[float, float]:
    """(boot to the first SSH command, the tests over one ssh), with OpenSSH and QEMU."""
    from orchestrator.base.runner import Runner
    from orchestrator.targets import keys as keysmod
    from orchestrator.targets import qemu
    from orchestrator.targets.rootfs import TESTS_DIR

    keys = keysmod.ensure(Runner())
    port = qemu.free_port()
    argv = qemu.qemu_argv(a, qemu.BootSpec(image, initrd, port, "tcg"))
    with tempfile.TemporaryDirectory() as d:
        kh = Path(d) / "known_hosts"
        kh.write_text(keys.known_hosts_line(port) + "\n")
        ssh = ["ssh", "-q", "-p", str(port), "-i", str(keys.client), "-o",
               f"UserKnownHostsFile={kh}", "-o", "StrictHostKeyChecking=yes", "-o",
               "ConnectTimeout=2", "-o", "BatchMode=yes", "-F", "/dev/null", "root@127.0.0.1"]
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            while subprocess.run([*ssh, "true"], stdin=subprocess.DEVNULL,
                                 capture_output=True).returncode != 0:
                if time.monotonic() - t0 > 180:
                    raise RuntimeError("bare boot: no SSH after 180 s")
                time.sleep(0.05)
            boot = time.monotonic() - t0
            t1 = time.monotonic()
            script = "; ".join(f"{TESTS_DIR}/{t} >/dev/null 2>&1" for t in tests)
            subprocess.run([*ssh, script], stdin=subprocess.DEVNULL, capture_output=True)
            return boot, time.monotonic() - t1
        finally:
            os.killpg(p.pid, 9)
            p.wait()


def parts(meta: dict, arch: str) -> dict[str, float]:
    st = meta["arches"][arch]["stages"]
    out = {"apply": meta.get("apply", {}).get("seconds") or 0.0}
    out.update({k: v.get("seconds") or 0.0 for k, v in st.items()})
    return out


def measure(arch_name: str, where: Path, jobs: int, rounds: int) -> float:
    """Prints the figures for one arch; returns the median ratio orch / floor."""
    from orchestrator.kernel import arch as archmod

    a = archmod.get(arch_name)
    co = prepare_checkout(where)
    out = where / "out"
    print(f"== edit loop, {a.name}: {EDITED} in {co} "
          f"({'committed' if COMMIT_EDIT else 'uncommitted'} edit)")
    # Untimed: orch's worktree and a build dir with objects (an edit: the default kernel
    # is in the store, so without one orch would compile nothing and its first timed
    # round would be a whole build).
    edit(co, "warm")
    _, meta = orch_run(a, co, out / f"{a.name}-warm")
    info = meta["arches"][a.name]
    initrd = Path(info["initramfs"])
    if not (build_dir(co, a) / a.image_path).exists():
        bare_make(a, co, jobs, config=out / f"{a.name}-warm" / a.name / "config")  # untimed
    tests = sorted(p.stem for p in (ROOT / "selftests").glob("*.c"))
    ratios = []
    for n in range(rounds):
        edit(co, "orch")
        took, meta = orch_run(a, co, out / f"{a.name}-{n}")
        p = parts(meta, a.name)
        edit(co, "bare")
        mk = bare_make(a, co, jobs)
        image = build_dir(co, a) / a.image_path
        boot, test = bare_boot_and_test(a, image, initrd, tests)
        floor = mk + boot + test
        ratios.append(took / floor)
        compiled = meta["arches"][a.name]["kernel"]["compiled"]
        print(f"  orch run {took:.1f} s (compiled: {compiled}): "
              + ", ".join(f"{k} {v:.1f}" for k, v in p.items())
              + f"; other {took - sum(p.values()):.1f}")
        print(f"  floor {floor:.1f} s: make {mk:.1f} + boot {boot:.1f} + tests {test:.1f}")
        print(f"  ratio {took / floor:.2f}x (target <= 1.15x)", flush=True)
    ratios.sort()
    return ratios[len(ratios) // 2]


# --- the same figure through a series (`--edit-loop-series`): edit one patch ---------------

MARK = "/* orch edit-loop benchmark: "


def edit_patch(series: Path, token: str) -> None:
    """Turn one blank line the last mm/userfaultfd.c patch adds into a comment carrying
    `token` (the line count stays, and no later patch has it as context)."""
    patch = sorted(series.glob("0007-*.patch"))[0]
    lines = patch.read_text().splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if ln.startswith("diff --git a/mm/userfaultfd.c"))
    at = next(i for i in range(start, len(lines))
              if lines[i] == "+\n" or lines[i].startswith("+" + MARK))
    lines[at] = f"+{MARK}{token} */\n"
    patch.write_text("".join(lines))


def measure_series(arch_name: str, where: Path, jobs: int, rounds: int) -> float:
    """Edit one patch of the default series (a copy), `orch run --series COPY` on the
    embedded tree, vs the same one-line edit made in orch's worktree and bare make in its
    build dir (under the tree lock), a bare boot and the tests. No second build dir: its
    first build is what a user checkout costs on a loaded 2-core machine."""
    from orchestrator.base.runner import Runner
    from orchestrator.kernel import arch as archmod
    from orchestrator.kernel import build, kconfig
    from orchestrator.kernel import tree as treemod
    from orchestrator.run.pipeline import tree_lock

    a = archmod.get(arch_name)
    series = where / "series"
    if not series.exists():
        shutil.copytree(ROOT / "patches" / "uffd-move", series)
    tree = treemod.resolve(None, Runner(), progress=print)
    wt = treemod.worktree_path(tree)
    bd = treemod.build_dir(wt, a.name)
    out = where / "out"
    print(f"== edit loop, {a.name}: one line of {EDITED} in {series.name}/0007 (a patch)")

    def orch(tag: str) -> tuple[float, dict]:
        # The round holds the tree lock (no other orch moves the worktree between orch's
        # run and the bare make); the child is told so.
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "orchestrator", "run", "--arch", a.name,
                        "--series", str(series), "-o", str(out / tag), "-q"], cwd=ROOT,
                       env=dict(os.environ, ORCH_TREE_LOCK_HELD=tree.key))
        return time.monotonic() - t0, json.loads((out / tag / "metadata.json").read_text())

    # The bare make has a build dir of its own: one orch did not write would cost orch's
    # next round a full rebuild (kernel/provenance.py trusts no object it has no record of).
    bare_bd = wt / f"{treemod.BUILD_PREFIX}bench-{a.name}"
    extra, env = bare_env(a)
    env.update(CCACHE_BASEDIR=str(wt), KBUILD_BUILD_HOST="orch-bench")
    edit_patch(series, f"warm-{uuid.uuid4().hex[:8]}")
    with tree_lock(tree):
        _, meta = orch(f"{a.name}-warm")  # untimed: orch's build dir holds the objects
        bare_bd.mkdir(exist_ok=True)
        shutil.copy(bd / ".config", bare_bd / ".config")
        with open(where / f"bare-make-{a.name}.log", "a") as log:  # untimed: warm it too
            subprocess.run(kconfig.make_argv(a, wt, bare_bd, [a.image], jobs=jobs) + extra,
                           check=True, env=dict(env, **build.REPRO_ENV), stdout=log,
                           stderr=subprocess.STDOUT)
    initrd = Path(meta["arches"][a.name]["initramfs"])
    tests = sorted(p.stem for p in (ROOT / "selftests").glob("*.c"))
    ratios = []
    for n in range(rounds):
        edit_patch(series, f"orch-{uuid.uuid4().hex[:8]}")
        with tree_lock(tree):
            took, meta = orch(f"{a.name}-{n}")
            f = wt / EDITED
            text = f.read_text()
            i = text.index(MARK)
            j = text.index(" */", i)
            f.write_text(text[:i] + f"{MARK}bare-{uuid.uuid4().hex[:8]}" + text[j:])
            t0 = time.monotonic()
            with open(where / f"bare-make-{a.name}.log", "a") as log:
                subprocess.run(kconfig.make_argv(a, wt, bare_bd, [a.image], jobs=jobs)
                               + extra, check=True, env=dict(env, **build.REPRO_ENV),
                               stdout=log, stderr=subprocess.STDOUT)
            mk = time.monotonic() - t0
            image = where / f"{a.name}-bare-image"
            shutil.copy(bare_bd / a.image_path, image)
        boot, test = bare_boot_and_test(a, image, initrd, tests)
        floor = mk + boot + test
        ratios.append(took / floor)
        p = parts(meta, a.name)
        print(f"  orch run {took:.1f} s (compiled: {meta['arches'][a.name]['kernel']['compiled']}"
              f"): " + ", ".join(f"{k} {v:.1f}" for k, v in p.items())
              + f"; other {took - sum(p.values()):.1f}")
        print(f"  floor {floor:.1f} s: make {mk:.1f} + boot {boot:.1f} + tests {test:.1f}")
        print(f"  ratio {took / floor:.2f}x (target <= 1.15x)", flush=True)
    ratios.sort()
    return ratios[len(ratios) // 2]

