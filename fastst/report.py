"""The tables of the README and of docs/, generated from ``results/*.json``
(``python -m fastst report-tables``).

A table sits in a Markdown file (README.md or a page of docs/) between ``<!-- results:NAME -->`` and
``<!-- /results -->``, where NAME is a result file's name; this module renders it again from that file,
so that a number in the table is the number a command wrote, and the test suite fails when the two
disagree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fastst.errors import FaststError
from fastst.recipes import row_at
from fastst.results import read_result, results_dir

BLOCK = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def _minutes(seconds) -> str:
    return "never" if seconds is None else f"{seconds / 60:.1f} min"


def _ratio(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _machine(result: dict) -> str:
    m = result["machine"]
    rate, bf16 = m.get("matmul_fp32_gflops"), m.get("matmul_bf16_gflops")
    native_bf16 = any(flag in m.get("cpu_flags", []) for flag in ("avx512_bf16", "amx_bf16")) or m.get("gpu")
    return (
        f"{m['cpu']}, {m['threads']} thread{'s' if m['threads'] != 1 else ''}"
        + (f", fp32 matmul {rate:.0f} GFLOP/s" if rate else "")
        + (f", bf16 {bf16:.0f}" if bf16 and native_bf16 else "")
        + f"; `{result['command']}`"
    )


def time_to_quality_table(result: dict) -> str:
    reference = result["reference_recipe"]
    lines = [
        f"| recipe | iterations | training time | optimality ratio (final) | Fig. 5 iterations (final) "
        f"| `{reference}` at the same time | at `{reference}`'s time | time to `{reference}`'s final ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reference_final = result["summary"][reference]["final_optimality_ratio"]
    for label, row in result["summary"].items():
        at_reference = row["optimality_ratio_at_reference_time"]  # its last kept weights by then
        change = (
            f" ({at_reference / reference_final - 1:+.0%})"
            if label != reference and at_reference is not None
            else ""
        )
        fraction = row["fraction_of_reference_time"]
        reached = _minutes(row["seconds_to_reference_quality"]) + (
            f" ({fraction:.0%})" if fraction is not None and label != reference else ""
        )
        equivalent = row["final_lbfgs_equivalent"]
        kept = row_at(result["curves"][reference], row["total_seconds"])  # its last kept weights by then
        same_time = (
            "no weights kept yet"
            if kept is None or kept["iteration"] == 0
            else _ratio(kept["optimality_ratio"])
        )
        lines.append(
            f"| `{label}` | {row['iterations']:,} | {_minutes(row['total_seconds'])} "
            f"| {_ratio(row['final_optimality_ratio'])} "
            f"| {'beyond the budget' if equivalent is None else f'{equivalent:g}'} | {same_time} "
            f"| {_ratio(at_reference)}{change} | {reached} |"
        )
    lines += [
        "",
        "| training step | precision | seconds | GFLOP | share of that precision's matmul rate |",
        "|---|---|---|---|---|",
    ]
    for row in result["step_timing"]:
        lines.append(
            f"| {row['step']} | {row.get('precision', 'fp32')} | {row['seconds']:.3f} | {row['gflop']:.0f} "
            f"| {row.get('fraction_of_matmul', row['fraction_of_fp32_matmul']):.0%} |"
        )
    protocol = result["protocol"]
    lines.append("")
    lines.append(
        f"Median over {len(result['photos'])} held-out photos at {protocol['photo_size']} px; L-BFGS optimum "
        f"after {protocol['iterations']} iterations, Fig. 5 from noise within "
        f"{protocol['noise_iterations']}; "
        f"times from one interleaved step benchmark on {_machine(result)} "
        f"(`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def calibration_table(result: dict) -> str:
    lines = [
        "| weighting | style / content term at the optimum, max over min across styles | std of log10 |",
        "|---|---|---|",
    ]
    labels = {
        "raw": "today's raw weights",
        "energy": "calibrated (Gram energy), the default",
        "distance": "calibrated (distance of photos to the style)",
    }
    for weighting, row in result["spread"].items():
        lines.append(
            f"| {labels.get(weighting, weighting)} | {row['max_over_min']:.1f} | {row['std_log10']:.2f} |"
        )
    lines.append("")
    lines.append(
        f"{len({r['style'] for r in result['rows']})} styles, {len({r['photo'] for r in result['rows']})} "
        f"photos at {result['photo_size']} px, {result['iterations']} L-BFGS iterations; "
        f"{_machine(result)} (`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def base_quality_table(result: dict) -> str:
    def fig5(value) -> str:
        return "beyond the budget" if value is None else f"{value:g}"

    alone = f"`{result['alone_preset']}`" if result.get("alone_preset") else "one style"
    lines = [
        f"| style | base: optimality ratio | base: Fig. 5 iterations | {alone} alone after the same time a "
        f"style | {alone} alone, end of its run |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["quality"].items():
        base, equal, final = row["base"], row.get("cpu_at_equal_time"), row.get("cpu_final")
        lines.append(
            f"| {name.replace('_', ' ')} | {_ratio(base['optimality_ratio'])} | "
            f"{fig5(base['lbfgs_equivalent'])} "
            + (
                f"| {_ratio(equal['optimality_ratio'])} (iteration {equal['iteration']:,}) "
                if equal
                else ("| its run is shorter " if final else "| n/a ")
            )
            + (
                f"| {_ratio(final['optimality_ratio'])} ({final['iteration']:,} iterations, "
                f"{_minutes(final['seconds'])}) |"
                if final
                else "| n/a |"
            )
        )
    lines.append("")
    lines.append(
        f"The base: {len(result['styles'])} styles, {result['iterations']:,} iterations, "
        f"{_minutes(result['base_seconds'])} by the step benchmark ({_minutes(result['seconds_per_style'])} "
        f"a style)"
        + (
            f", trained in {_minutes(result['trained_seconds'])} by its own log on the same machine "
            "(`results/base_training/losses.csv`)"
            if result.get("trained_seconds")
            else ""
        )
        + f". Median over {len(result['photos'])} held-out photos; {_machine(result)} "
        f"(`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def tiling_table(result: dict) -> str:
    lines = [
        "| photo | size | tiled against one pass (PSNR) | largest difference | with exact "
        "statistics (PSNR) |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['photo']} | {row['width']} x {row['height']} | {row['psnr_db']:.1f} dB "
            f"| {row['max_abs_difference']:.3f} | {row['psnr_db_exact_statistics']:.1f} dB |"
        )
    lines.append("")
    lines.append(
        f"Tiles of {result['tile']} px overlapping by {result['overlap']} px, statistics from the "
        "image shrunk "
        f"to {result['stats_size']} px, {result['precision']}, model `{result['model']}`; {_machine(result)} "
        f"(`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def video_table(result: dict) -> str:
    lines = [
        "| clip | frames | frame by frame, eager fp32 | `fastst stylize`, one pass "
        "| `fastst stylize`, default |",
        "|---|---|---|---|---|",
    ]
    for row in result["speed"]:
        lines.append(
            f"| {row['size']} ({row['width']} x {row['height']}) | {row['frames']} "
            f"| {row['plain_fps']:.2f} frames/s "
            f"| {row['fastst_one_pass_fps']:.2f} frames/s ({row['speedup_one_pass']:.2f}x) "
            f"| {row['fastst_default_fps']:.2f} frames/s ({row['speedup_default']:.2f}x) |"
        )
    lines += [
        "",
        "| instance-norm statistics | grid anchored to the scene | flicker | against frame by frame |",
        "|---|---|---|---|",
    ]
    default = result["default"]
    for row in result["flicker"]:
        chosen = row["temporal"] == default["temporal"] and row["anchor"] == default["anchor"]
        lines.append(
            f"| {row['temporal']}{' (default)' if chosen else ''} | {'yes' if row['anchor'] else 'no'} "
            f"| {row['flicker']:.2f} | {row['relative']:.2f} |"
        )
    clip = result["flicker_clip"]
    lines.append("")
    lines.append(
        f"Model `{result['model']}` in {result['precision']} (`fastst stylize`); the default's first pass "
        f"reads up to {result['clip_sample']} frames. Flicker on a {clip['frames']}-frame "
        f"{clip['width']} x {clip['height']} pan over {result['photo']} moving {result['pan_step'][0]} and "
        f"{result['pan_step'][1]} px a frame; " + _machine(result) + " (`results/video.json`)."
    )
    return "\n".join(lines)


def table1_table(result: dict) -> str:
    counts = sorted(int(k.split("_")[1]) for k in result["rows"][0] if re.fullmatch(r"baseline_\d+_s", k))

    def cell(row, n):
        mark = "*" if row[f"baseline_{n}_extrapolated"] else ""
        return f"{row[f'baseline_{n}_s']:,.1f} s{mark} ({row[f'speedup_{n}']:,.0f}x)"

    lines = [
        "| size | network, one pass | "
        + " | ".join(f"baseline, {n} iterations (speed-up)" for n in counts)
        + " |",
        "|---|---|" + "---|" * len(counts),
    ]
    for row in result["rows"]:
        size = row["size"]
        lines.append(
            f"| {size} x {size} | {row['network_s']:.3f} s | "
            + " | ".join(cell(row, n) for n in counts)
            + " |"
        )
    lines.append("")
    lines.append(
        f"\\* the baseline's cost per iteration (measured over {result['measured_iterations']} iterations) "
        f"multiplied out; the other cells (estimated within {result['full_seconds']:g} s) ran in full. "
        f"Network: {result['network']}; baseline: "
        f"{result['baseline']}; {_machine(result)} (`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def inference_paths_table(result: dict) -> str:
    paths = [p for p in ("fast", "compiled", "onnxruntime", "openvino") if f"{p}_s" in result["rows"][0]]
    names = {
        "fast": "`fastst stylize`",
        "compiled": "`--compile`",
        "onnxruntime": "onnxruntime",
        "openvino": "OpenVINO",
    }
    precision_key = {"fast": "precision", "compiled": "compiled_precision"}
    psnr_key = {"fast": "psnr_db", "compiled": "compiled_psnr_db"}
    lines = [
        "| size | plain (eager fp32) | " + " | ".join(names[p] for p in paths) + " |",
        "|---|---|" + "---|" * len(paths),
    ]
    for row in result["rows"]:
        cells = [
            f"{row[f'{p}_s'] * 1e3:,.0f} ms, {row[f'{p}_speedup']:.2f}x, "
            f"{row[precision_key.get(p, f'{p}_precision')]}, "
            f"{row[psnr_key.get(p, f'{p}_psnr_db')]:.0f} dB"
            for p in paths
        ]
        lines.append(
            f"| {row['size']} x {row['size']} | {row['plain_s'] * 1e3:,.0f} ms | " + " | ".join(cells) + " |"
        )
    lines.append("")
    lines.append(
        "Each cell: the median of one image's time, the speed-up over the plain network, the precision the "
        "path runs in, and the lowest PSNR against the plain fp32 output over "
        f"{result['rows'][0]['psnr_photos']} "
        f"held-out photos. Model `{result['model']}` (width {result['width']}); all paths timed in the same "
        f"interleaved rounds; {_machine(result)} (`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def step_profile_table(result: dict) -> str:
    lines = [
        "| part of the step | share of its time | GFLOP "
        "| their rate against the matmul rate of their precision |",
        "|---|---|---|---|",
    ]
    for name, row in result["groups"].items():
        rate, gflop = row["fraction_of_matmul"], row["gflop"]
        lines.append(
            f"| {name} | {row['share_of_step']:.0%} | {f'{gflop:.1f}' if gflop else 'none'} | "
            + (f"{rate:.0%} |" if rate is not None else "n/a |")
        )
    lines.append("")
    lines.append(
        f"The `{result['preset']}` preset's step (batch {result['batch_size']}, {result['size']} px, "
        f"{result['precision']}): {result['seconds']:.3f} s, {result['gflop']:.0f} GFLOP, "
        f"{result['fraction_of_matmul']:.0%} of the {result['precision']} matmul rate"
        + (
            f"; in interleaved rounds of the same run, {before['now_seconds']:.3f} s against "
            f"{before['seconds']:.3f} s with torch's instance norm and Adam unfused "
            f"({before['seconds'] / before['now_seconds']:.2f}x)"
            if (before := result.get("before"))
            else ""
        )
        + f"; {_machine(result)} (`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def step_layout_table(result: dict) -> str:
    compiled = all("compiled_s" in row for row in result["rows"])
    lines = [
        "| preset | step | GFLOP | contiguous | channels-last | speed-up |"
        + (" channels-last, compiled | speed-up | compiling |" if compiled else ""),
        "|---|---|---|---|---|---|" + ("---|---|---|" if compiled else ""),
    ]
    for row in result["rows"]:
        lines.append(
            f"| `{row['preset']}` | batch {row['batch_size']}, {row['size']} px, width {row['width']:g} "
            f"| {row['gflop']:.0f} "
            f"| {row['contiguous_s']:.3f} s ({row['fraction_of_matmul_contiguous']:.0%}) "
            f"| {row['channels_last_s']:.3f} s ({row['fraction_of_matmul_channels_last']:.0%}) "
            f"| {row['speedup']:.2f}x |"
            + (
                f" {row['compiled_s']:.3f} s ({row['fraction_of_matmul_compiled']:.0%}) "
                f"| {row['compiled_speedup']:.2f}x | {row['compile_s']:.0f} s |"
                if compiled
                else ""
            )
        )
    lines.append("")
    lines.append(
        f"Each time: the median of {result['rounds']} interleaved rounds of one step in "
        f"{result['precision']}, with its share of the {result['precision']} matmul rate; speed-ups against "
        "contiguous memory"
        + ("; compiling: the seconds of the compiled step's first two calls" if compiled else "")
        + f"; {_machine(result)} (`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def fig5_scale_table(result: dict) -> str:
    counts = list(result["rows"][0]["thresholds"])
    lines = [
        "| style | " + " | ".join(f"{n} iterations" for n in counts) + " | best measured |",
        "|---|" + "---|" * (len(counts) + 1),
    ]
    for row in result["rows"]:
        best = row["best_measured"]
        lines.append(
            f"| {row['style'].replace('_', ' ')} | "
            + " | ".join(f"{row['thresholds'][n]:.2f}" for n in counts)
            + f" | {best['optimality_ratio']:.2f} ({best['lbfgs_equivalent']:g} iterations) |"
        )
    lines.append("")
    lines.append(
        "The optimality ratio a network needs to match that many L-BFGS iterations from noise (median over "
        f"{result['rows'][0]['photos']} held-out photos at {result['photo_size']} px), and the lowest final "
        "ratio of any recipe in that style's time-to-quality table with its count; "
        f"`{result['command']}` (`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def _three_figures(value: float) -> str:
    """``value`` to three significant figures, with thousands separated: 31,700, 4.39, 83,300."""
    rounded = float(f"{value:.3g}")
    return f"{rounded:,.0f}" if rounded >= 1000 else f"{rounded:g}"


def length_scaling_table(result: dict) -> str:
    reference = result["reference_recipe"]
    lines = [
        "| recipe | iterations | training time | optimality ratio (final) | Fig. 5 iterations (final) |",
        "|---|---|---|---|---|",
    ]
    for point in result["points"]:
        lines.append(
            f"| `{point['recipe']}` | {point['iterations']:,} | {point['seconds'] / 60:.1f} min | "
            f"{point['optimality_ratio']:.2f} | {point['lbfgs_equivalent']:g} |"
        )
    needs = next(iter(result["fits"].values()))["needs"]  # the targets, the same in every fit
    header = [
        f"{target} (ratio {need['optimality_ratio']:.2f}): iterations, times `{reference}`'s time"
        for target, need in needs.items()
    ]
    lines += ["", "| fit | k | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(needs)]
    for form, fit in result["fits"].items():
        cells = [
            f"{_three_figures(need['iterations'])}, {_three_figures(need['times_reference_time'])}x"
            for need in fit["needs"].values()
        ]
        lines.append(f"| {form} = a n<sup>-k</sup> | {fit['exponent']:.3f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"The `cpu` preset's final quality against its length n, each on its own schedule (median over "
        f"{result['photos']} held-out photos at {result['photo_size']} px; runs, scores and times from "
        f"`results/{result['from']}.json`), and power-law fits of it; `{reference}`'s final ratio is "
        f"{result['reference_final_ratio']:.2f}. The multiple of `{reference}`'s time is the speed-up the "
        f"`cpu` preset's step would need to get there in that time; the step runs at "
        f"{result['cpu_step_fraction_of_matmul']:.0%} of the machine's matmul rate, so that at the full rate "
        f"it would be {1 / result['cpu_step_fraction_of_matmul']:.1f}x faster; "
        f"`{result['command']}` (`results/{result['name']}.json`)."
    )
    return "\n".join(lines)


def spec_table(spec: dict, result: dict) -> str:
    """A table a study wrote into its result (``{"columns": [...], "rows": [[...], ...]}``, cells as
    they are to be shown), with the machine and command below it."""
    lines = ["| " + " | ".join(spec["columns"]) + " |", "|" + "---|" * len(spec["columns"])]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in spec["rows"]]
    return "\n".join(lines + ["", f"Measured on {_machine(result)}."])


def render(name: str, folder: str | os.PathLike | None = None) -> str:
    """The table of result ``name``; ``FILE.TABLE`` is the table TABLE that result FILE carries."""
    file, _, table = name.partition(".")
    try:
        result = read_result(file, folder)
    except FileNotFoundError:
        raise FaststError(f"a table cites results/{file}.json, which does not exist") from None
    if table:
        if table not in result.get("tables", {}):
            raise FaststError(f"results/{file}.json holds no table {table!r}")
        return spec_table(result["tables"][table], result)
    if name.startswith("time_to_quality_"):
        return time_to_quality_table(result)
    if name == "calibration_spread":
        return calibration_table(result)
    if name == "tiling_accuracy":
        return tiling_table(result)
    if name == "base_quality":
        return base_quality_table(result)
    if name == "video":
        return video_table(result)
    if name == "table1":
        return table1_table(result)
    if name == "inference_paths":
        return inference_paths_table(result)
    if name.startswith("step_profile"):
        return step_profile_table(result)
    if name == "step_layout":
        return step_layout_table(result)
    if name == "fig5_scale":
        return fig5_scale_table(result)
    if name == "length_scaling":
        return length_scaling_table(result)
    raise FaststError(f"no table is defined for results/{name}.json")


def update_readme(
    readme: str | os.PathLike, folder: str | os.PathLike | None = None, check: bool = False
) -> list[str]:
    """Render every table of the Markdown file ``readme`` again; write them (or, with ``check``, only
    report). Returns the names of the tables that differed."""
    readme = Path(readme)
    text = readme.read_text()
    changed = []

    def replace(match: re.Match) -> str:
        body = render(match["name"], folder or results_dir()) + "\n"
        if body != match["body"]:
            changed.append(match["name"])
        return match[1] + body + match[4]

    new = BLOCK.sub(replace, text)
    if changed and not check:
        readme.write_text(new)
    return changed


def markdown_files(root: str | os.PathLike) -> list[Path]:
    """The files whose tables are generated: ``README.md`` and every ``docs/*.md`` of the checkout
    ``root``."""
    root = Path(root)
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def update_tables(
    files: list[str | os.PathLike], folder: str | os.PathLike | None = None, check: bool = False
) -> dict[Path, list[str]]:
    """:func:`update_readme` on each of ``files``; the tables that differed, by file (files whose
    tables all match are left out)."""
    changed = {}
    for file in files:
        names = update_readme(file, folder, check)
        if names:
            changed[Path(file)] = names
    return changed
