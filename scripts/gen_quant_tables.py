#!/usr/bin/env python3
"""Generates kernels/cpu/quant_tables.{h,cpp}: the IQ grids and sign/value tables of spec §6.

Source: the packed grids of ggml's `gguf` Python package (gguf/quants.py): `grid_hex` holds one
byte per two hex characters, each byte packs 8 / bits elements (low bits first, bits =
ceil(log2(len(grid_map)))), and `grid_map` maps each element to its value. A grid row is 8
elements; we store it as ggml's ggml-common.h does: one uint64 whose byte j is element j.

quants.py is read as text and parsed with `ast` (it is not imported), so this script needs neither
numpy nor the package's own grid decoder (`init_grid`) — tests/python/test_quant_tables.py
compares our tables against that decoder, and tests/unit/kernels/quant_tables_test.cpp against
digests of ggml-common.h, so the three sources check one another.

Usage:
  scripts/gen_quant_tables.py            # rewrite kernels/cpu/quant_tables.{h,cpp}
  scripts/gen_quant_tables.py --check    # exit 1 if the committed files differ from a regeneration
  scripts/gen_quant_tables.py --quants-py PATH   # read another copy of quants.py
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import math
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "kernels" / "cpu"


def find_quants_py() -> pathlib.Path:
    spec = importlib.util.find_spec("gguf")  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gen_quant_tables: the gguf package is not installed (use the repo's .venv)")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "quants.py"


def class_attributes(tree: ast.Module) -> dict[str, dict[str, ast.expr]]:
    """Class name -> {attribute name -> value expression} for plain and annotated assignments."""
    classes: dict[str, dict[str, ast.expr]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs: dict[str, ast.expr] = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if isinstance(target, ast.Name):
                    attrs[target.id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if stmt.value is not None:
                    attrs[stmt.target.id] = stmt.value
        classes[node.name] = attrs
    return classes


def resolve(classes: dict[str, dict[str, ast.expr]], cls: str, name: str):
    """Literal value of cls.name, following `name = OTHER.name` aliases (IQ1_M reuses IQ1_S)."""
    expr = classes[cls][name]
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        return resolve(classes, expr.value.id, expr.attr)
    return ast.literal_eval(expr)


def unpack_grid(grid_hex: bytes, grid_map: tuple, rows: int, cols: int) -> list[list[int]]:
    bits = math.ceil(math.log2(len(grid_map)))
    per_byte = 8 // bits
    packed = bytes.fromhex(grid_hex.decode("ascii"))
    elements = [grid_map[(b >> (bits * k)) & ((1 << bits) - 1)] for b in packed for k in range(per_byte)]
    if len(elements) != rows * cols:
        sys.exit(f"gen_quant_tables: grid has {len(elements)} elements, expected {rows}x{cols}")
    return [elements[r * cols:(r + 1) * cols] for r in range(rows)]


def rows_to_u64(grid: list[list[int]]) -> list[int]:
    """Byte j of each uint64 is element j (little-endian), values stored as (u)int8 bytes."""
    return [sum((v & 0xFF) << (8 * j) for j, v in enumerate(row)) for row in grid]


def load_tables(quants_py: pathlib.Path) -> dict[str, tuple[str, list[int]]]:
    classes = class_attributes(ast.parse(quants_py.read_text(), str(quants_py)))
    tables: dict[str, tuple[str, list[int]]] = {}
    for name, cls in (("iq2xxs_grid", "IQ2_XXS"), ("iq2xs_grid", "IQ2_XS"), ("iq1s_grid", "IQ1_S")):
        rows, cols = resolve(classes, cls, "grid_shape")
        grid = unpack_grid(resolve(classes, cls, "grid_hex"), resolve(classes, cls, "grid_map"), rows, cols)
        tables[name] = ("uint64_t", rows_to_u64(grid))
    tables["ksigns_iq2xs"] = ("uint8_t", list(resolve(classes, "IQ2_XXS", "ksigns")))
    # gguf-py has no kmask table: it unpacks sign bit j as (byte >> j) & 1, i.e. mask 1 << j.
    tables["kmask_iq2xs"] = ("uint8_t", [1 << j for j in range(8)])
    tables["kvalues_mxfp4"] = ("int8_t", list(resolve(classes, "MXFP4", "kvalues")))
    return tables


HEADER_DOC = {
    "iq2xxs_grid": "IQ2_XXS: 256 rows of 8 magnitudes in {8, 25, 43}, byte j = element j.",
    "iq2xs_grid": "IQ2_XS: 512 rows of 8 magnitudes in {8, 25, 43}, byte j = element j.",
    "iq1s_grid": "IQ1_S and IQ1_M: 2048 rows of 8 int8 values in {-1, 0, +1}, byte j = element j.",
    "ksigns_iq2xs": "7-bit sign index -> sign byte; bit 7 = parity of bits 0-6 (even # of minus).",
    "kmask_iq2xs": "Bit j selects element j's sign in a ksigns_iq2xs byte.",
    "kvalues_mxfp4": "MXFP4 nibble -> twice the E2M1 value (hence the 2^(e-128) scale).",
}

ORDER = ["iq2xxs_grid", "iq2xs_grid", "iq1s_grid", "ksigns_iq2xs", "kmask_iq2xs", "kvalues_mxfp4"]


def format_values(ctype: str, values: list[int]) -> list[str]:
    if ctype == "uint64_t":
        items, per_line = [f"0x{v:016x}" for v in values], 4
    else:
        items, per_line = [str(v) for v in values], 16
    return ["    " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]


def render_header(tables) -> str:
    lines = [
        "// Lookup tables of the IQ and MXFP4 quant formats (spec §6), bit-identical to ggml's",
        "// ggml-common.h. GENERATED by scripts/gen_quant_tables.py from gguf-py's packed grids: do not edit.",
        "#pragma once",
        "",
        "#include <cstdint>",
        "",
        "namespace v4::kernels {",
        "",
    ]
    for name in ORDER:
        ctype, values = tables[name]
        lines.append(f"// {HEADER_DOC[name]}")
        lines.append(f"extern const {ctype} {name}[{len(values)}];")
    lines += ["", "}  // namespace v4::kernels", ""]
    return "\n".join(lines)


def render_source(tables, source: str) -> str:
    lines = [
        "// GENERATED by scripts/gen_quant_tables.py from gguf-py's packed grids: do not edit.",
        f"// Source: {source}",
        "#include \"kernels/cpu/quant_tables.h\"",
        "",
        "namespace v4::kernels {",
        "",
        "// One table row per source line, as generated.",
        "// clang-format off",
    ]
    for name in ORDER:
        ctype, values = tables[name]
        lines.append(f"const {ctype} {name}[{len(values)}] = {{")
        lines += format_values(ctype, values)
        lines += ["};", ""]
    lines += ["// clang-format on", "", "}  // namespace v4::kernels", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quants-py", type=pathlib.Path, help="path of gguf/quants.py (default: installed package)")
    parser.add_argument("--out-dir", type=pathlib.Path, default=OUT_DIR)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()

    quants_py = args.quants_py or find_quants_py()
    tables = load_tables(quants_py)
    # Name the package version, not the machine's path, so regeneration elsewhere is stable.
    version = "unknown"
    for parent in quants_py.resolve().parents:
        for dist in parent.glob("gguf-*.dist-info"):
            version = dist.name.removeprefix("gguf-").removesuffix(".dist-info")
        if version != "unknown":
            break
    outputs = {
        args.out_dir / "quant_tables.h": render_header(tables),
        args.out_dir / "quant_tables.cpp": render_source(tables, f"gguf {version}, gguf/quants.py"),
    }
    stale = []
    for path, text in outputs.items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
    if stale:
        print("gen_quant_tables: stale: " + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
