"""Kernel configuration: tinyconfig + fragments, olddefconfig, and a check that every
requested option survived (tinyconfig silently drops options whose dependencies are off).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.base.errors import ConfigError, UsageError
from orchestrator.base.paths import CONFIGS
from orchestrator.base.runner import Runner
from orchestrator.kernel.arch import Arch
from orchestrator.store import cache

OPT_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclass(frozen=True)
class Request:
    option: str
    value: str  # 'y', 'm', 'n', a number or a quoted string
    where: str  # file:line


def parse_fragment(path: Path) -> list[Request]:
    if not path.is_file():
        raise UsageError(f"config fragment {path}: no such file")
    out = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = UNSET_RE.match(line)
        if m:
            out.append(Request(m.group(1), "n", f"{path}:{n}"))
            continue
        if line.startswith("#"):
            continue
        m = OPT_RE.match(line)
        if not m:
            raise UsageError(f"{path}:{n}: not a config line: {raw!r}")
        out.append(Request(m.group(1), m.group(2), f"{path}:{n}"))
    return out


def fragments_for(arch: Arch, extra: list[str], profiles: list[str]) -> list[Path]:
    """base, the arch's own, what the selftests need, named profiles, then the user's."""
    names = ["base.config", f"{arch.name}.config", "selftests.config"]
    names += [f"{p}.config" for p in profiles]
    paths = [CONFIGS / n for n in names]
    for p in paths:
        if not p.is_file():
            raise UsageError(f"config fragment {p} is missing from orch's configs/")
    arch_specific = CONFIGS / f"{profiles[0]}-{arch.name}.config" if profiles else None
    if arch_specific and arch_specific.is_file():
        paths.append(arch_specific)
    for e in extra:
        p = Path(e).expanduser()
        if not p.is_file() and (CONFIGS / f"{e}.config").is_file():
            p = CONFIGS / f"{e}.config"
        if not p.is_file():
            raise UsageError(f"--config {e}: no such fragment file")
        paths.append(p.resolve())
    return paths


def merge_requests(fragments: list[Path]) -> dict[str, Request]:
    merged: dict[str, Request] = {}
    for f in fragments:
        for r in parse_fragment(f):
            merged[r.option] = r  # later fragments win, as with merge_config.sh
    return merged


def read_config(path: Path) -> dict[str, str]:
    vals: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = OPT_RE.match(line)
        if m:
            vals[m.group(1)] = m.group(2)
            continue
        m = UNSET_RE.match(line)
        if m:
            vals[m.group(1)] = "n"
    return vals


def apply_requests(config: Path, requests: dict[str, Request]) -> None:
    """Merge requests into a .config in place (what merge_config.sh -m does)."""
    lines = config.read_text().splitlines()
    out = []
    for line in lines:
        m = OPT_RE.match(line) or UNSET_RE.match(line)
        if m and m.group(1) in requests:
            continue
        out.append(line)
    for r in requests.values():
        out.append(f"# {r.option} is not set" if r.value == "n" else f"{r.option}={r.value}")
    config.write_text("\n".join(out) + "\n")


def dropped(final: dict[str, str], requests: dict[str, Request]) -> list[tuple[Request, str]]:
    """Requests whose value is not what the final .config has."""
    bad = []
    for r in requests.values():
        actual = final.get(r.option, "n")
        if actual != r.value:
            bad.append((r, actual))
    return bad


def depends_of(srctree: Path, option: str) -> list[str]:
    """The `depends on` lines of a Kconfig symbol, read from the tree's Kconfig files."""
    sym = option.removeprefix("CONFIG_")
    deps: list[str] = []
    head = re.compile(rf"^\s*(menu)?config\s+{re.escape(sym)}\s*$")
    stop = re.compile(r"^\s*(config|menuconfig|menu|endmenu|choice|endchoice|if|endif|"
                      r"source|comment|mainmenu)\b")
    for kc in srctree.rglob("Kconfig*"):
        try:
            lines = kc.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for i, line in enumerate(lines):
            if not head.match(line):
                continue
            for nxt in lines[i + 1:]:
                if stop.match(nxt):
                    break
                m = re.match(r"^\s*depends on\s+(.*)$", nxt)
                if m:
                    deps.append(m.group(1).strip())
    return deps


def annotate(expr: str, final: dict[str, str]) -> str:
    """'MMU && ARCH_X' -> 'MMU [=y] && ARCH_X [=n]'."""

    def sub(m: re.Match) -> str:
        s = m.group(0)
        if s in ("y", "m", "n"):
            return s
        return f"{s} [={final.get('CONFIG_' + s, 'n')}]"

    return re.sub(r"\b[A-Z][A-Z0-9_]*\b", sub, expr)


def explain(srctree: Path, final: dict[str, str], r: Request, actual: str) -> str:
    shown = "not set" if actual == "n" else actual
    msg = f"{r.where}: {r.option}={r.value} was dropped (final .config: {shown})"
    deps = depends_of(srctree, r.option)
    unmet = [annotate(d, final) for d in deps]
    if unmet:
        msg += "; depends on " + " && ".join(f"({d})" if "||" in d else d for d in unmet)
    return msg


# Everything in a tree that kconfig reads: the Kconfig files, the fragments tinyconfig
# merges (kernel/configs, arch/*/configs), the scripts Kconfig runs ($(shell,...) of
# scripts/*.sh, arch/*/tools/*.sh) and the Makefiles that set its environment (version,
# SRCARCH). A change elsewhere (a .c, a .h) cannot change the .config.
KCONFIG_INPUTS = (":(glob)**/Kconfig*", ":(glob)**/configs/**", ":(glob)scripts/**",
                  "Makefile", ":(glob)arch/*/Makefile", ":(glob)arch/*/tools/**")


def inputs_digest(srctree: Path, runner: Runner) -> str:
    """A digest of the content of every kconfig input in the git checkout `srctree`, as
    git blob ids: those git records, and for files modified on disk, their content as it
    is (an edit not committed counts, and gives the digest its commit will). About 0.1 s on
    a kernel tree: git's stat cache answers for the unmodified files."""
    g = ["git", "-C", str(srctree)]
    listed = runner.run([*g, "ls-files", "-s", "--", *KCONFIG_INPUTS], always=True)
    changed = runner.run([*g, "diff-files", "--name-only", "--", *KCONFIG_INPUTS],
                         always=True)
    if not listed.ok or not changed.ok:
        raise ConfigError(f"cannot list the Kconfig files of {srctree}: "
                          f"{(listed.tail or changed.tail or ['?'])[-1]}")
    blobs = {}
    for line in listed.output.splitlines():
        meta, _, name = line.partition("\t")
        blobs[name] = meta.split()[1] if len(meta.split()) > 1 else meta
    names = [n for n in changed.output.splitlines() if n]
    on_disk = [n for n in names if (srctree / n).is_file() and not (srctree / n).is_symlink()]
    for n in names:
        p = srctree / n
        blobs[n] = f"link:{os.readlink(p)}" if p.is_symlink() else "gone"
    if on_disk:
        res = runner.run([*g, "hash-object", "--", *on_disk], always=True)
        if not res.ok:
            raise ConfigError(f"cannot read the Kconfig files of {srctree}: {res.tail[-1:]}")
        blobs.update(zip(on_disk, res.output.split(), strict=True))
    return cache.digest(*[f"{n} {b}" for n, b in sorted(blobs.items())])


def configure(arch: Arch, srctree: Path, builddir: Path, fragments: list[Path],
              runner: Runner, log: Path, stamp: str = "") -> dict[str, str]:
    """Produce builddir/.config; returns the final config as a dict.

    `stamp` identifies the inputs (the tree's kconfig inputs, fragments, arch, compiler):
    when the .config in builddir was made from the same ones, kconfig is not run again.
    """
    requests = merge_requests(fragments)
    stamp_file = builddir / ".orch-config-stamp"
    cfg = builddir / ".config"
    if stamp and not runner.dry_run and cfg.exists() and stamp_file.exists() \
            and stamp_file.read_text() == stamp:
        final = read_config(cfg)
        if not dropped(final, requests):
            return final
    stamp_file.unlink(missing_ok=True)
    base = make_argv(arch, srctree, builddir, ["tinyconfig"])
    runner.check(base, ConfigError, f"make tinyconfig ({arch.name})", log=log)
    if not runner.dry_run:
        apply_requests(cfg, requests)
    runner.check(make_argv(arch, srctree, builddir, ["olddefconfig"]), ConfigError,
                 "make olddefconfig", log=log)
    if runner.dry_run:
        return {}
    final = read_config(cfg)
    bad = dropped(final, requests)
    if bad:
        first = explain(srctree, final, *bad[0])
        more = f" (and {len(bad) - 1} more: {', '.join(r.option for r, _ in bad[1:])})" \
            if len(bad) > 1 else ""
        with open(log, "a") as f:
            for r, actual in bad:
                f.write("orch: " + explain(srctree, final, r, actual) + "\n")
        raise ConfigError(first + more)
    if stamp:
        stamp_file.write_text(stamp)
    return final


def make_argv(arch: Arch, srctree: Path, builddir: Path, targets: list[str],
              jobs: int | None = None, cc: str | None = None) -> list[str]:
    """The make command line for this arch (pure: unit-tested)."""
    argv = ["make", "-C", str(srctree), f"O={builddir}", f"ARCH={arch.kernel_arch}"]
    if arch.cross_compile():
        argv.append(f"CROSS_COMPILE={arch.cross_compile()}")
    if cc:
        argv.append(f"CC={cc}")
    if jobs:
        argv.append(f"-j{jobs}")
    return argv + targets
