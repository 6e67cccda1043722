"""The project's one way to render bytes as a C or C++ array.

TFLM reads the model flatbuffer in place, so the array must be 16-byte aligned
(flatbuffers and TFLM's buffer reads assume it) and must hold exactly the
bytes of the .tflite. The formatting is fixed (12 hex bytes a line) so that
generated sources are deterministic and can be compared with golden files.
"""

from __future__ import annotations

import re

from mcuforge.errors import MCUForgeError

BYTES_PER_LINE = 12
_ALIGNMENT = {"c++": ("alignas(16) ", ""), "c99": ("", " __attribute__((aligned(16)))")}
LANGUAGES = tuple(_ALIGNMENT)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(name: str) -> str:
    """Return `name` if it can prefix C symbols, else raise MCUForgeError.

    >>> check_identifier("hello_world")
    'hello_world'
    """
    if not _IDENTIFIER.match(name):
        raise MCUForgeError(
            f"name {name!r} is not a C identifier: use letters, digits and '_' only, not starting with a digit"
        )
    return name


def symbol_names(name: str) -> tuple[str, str]:
    """The array and length symbols for a model called `name`.

    >>> symbol_names("kws")
    ('g_kws_model_data', 'g_kws_model_data_len')
    """
    check_identifier(name)
    return f"g_{name}_model_data", f"g_{name}_model_data_len"


def hex_lines(data: bytes, indent: str = "    ") -> str:
    """The bytes as comma-separated hex, BYTES_PER_LINE per line, each line ending with a comma.

    >>> print(hex_lines(bytes(range(14))))
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
        0x0c, 0x0d,
    """
    rows = []
    for start in range(0, len(data), BYTES_PER_LINE):
        chunk = data[start : start + BYTES_PER_LINE]
        rows.append(indent + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    return "\n".join(rows)


def _alignment(language: str) -> tuple[str, str]:
    """The (declaration prefix, declarator suffix) that align the array to 16 bytes."""
    try:
        return _ALIGNMENT[language]
    except KeyError:
        raise MCUForgeError(f"unknown C array language {language!r}: expected one of {', '.join(LANGUAGES)}") from None


def array_definition(name: str, data: bytes, language: str = "c++") -> str:
    """The definition of `g_NAME_model_data` and `g_NAME_model_data_len` holding `data`.

    C++ uses `alignas(16)`; C99 has no alignment keyword, so the array carries
    GCC/Clang's `aligned(16)` attribute (every Cortex-M toolchain we target).

    >>> print(array_definition("tiny", b"\\x01\\xff"))
    alignas(16) const unsigned char g_tiny_model_data[] = {
        0x01, 0xff,
    };
    const unsigned int g_tiny_model_data_len = 2;
    >>> print(array_definition("tiny", b"\\x01", language="c99"))
    const unsigned char g_tiny_model_data[] __attribute__((aligned(16))) = {
        0x01,
    };
    const unsigned int g_tiny_model_data_len = 1;
    """
    if not data:
        raise MCUForgeError(f"cannot write an empty C array for {name!r}: the model has no bytes")
    array, length = symbol_names(name)
    prefix, attribute = _alignment(language)
    return (
        f"{prefix}const unsigned char {array}[]{attribute} = {{\n"
        f"{hex_lines(data)}\n"
        f"}};\n"
        f"const unsigned int {length} = {len(data)};"
    )


def array_declaration(name: str) -> str:
    """The `extern` declarations matching array_definition, for a header.

    >>> print(array_declaration("tiny"))
    extern const unsigned char g_tiny_model_data[];
    extern const unsigned int g_tiny_model_data_len;
    """
    array, length = symbol_names(name)
    return f"extern const unsigned char {array}[];\nextern const unsigned int {length};"
