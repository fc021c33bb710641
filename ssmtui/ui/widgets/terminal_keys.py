"""Textual key names -> the bytes an xterm sends for them (what the remote pty expects).

Printable characters go as UTF-8; Enter is CR, Backspace DEL; arrows, Home/End, PgUp/PgDn,
Insert/Delete and F1-F12 are xterm escape sequences (with ``;mod`` for shift/alt/ctrl, and the
``ESC O`` forms in application cursor mode); ``ctrl+letter`` is the control byte; ``alt+x`` is
ESC then x. Also mouse reports (X10 and SGR) and bracketed paste.
"""

from __future__ import annotations

__all__ = ["encode_mouse", "encode_paste", "key_to_bytes"]

_CSI = "\x1b["

#: Keys with a fixed sequence (modifiers go in as ``1;mod`` or ``n;mod``).
_CURSOR = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
_TILDE = {
    "insert": 2,
    "delete": 3,
    "pageup": 5,
    "pagedown": 6,
    "f5": 15,
    "f6": 17,
    "f7": 18,
    "f8": 19,
    "f9": 20,
    "f10": 21,
    "f11": 23,
    "f12": 24,
}
_SS3 = {"f1": "P", "f2": "Q", "f3": "R", "f4": "S"}
_PLAIN = {
    "enter": b"\r",
    "tab": b"\t",
    "shift+tab": b"\x1b[Z",
    "backspace": b"\x7f",
    "escape": b"\x1b",
    "space": b" ",
    "ctrl+space": b"\x00",
    "ctrl+@": b"\x00",
    "ctrl+at": b"\x00",
    "ctrl+backslash": b"\x1c",
    "ctrl+right_square_bracket": b"\x1d",
    "ctrl+circumflex_accent": b"\x1e",
    "ctrl+underscore": b"\x1f",
    "ctrl+minus": b"\x1f",
    "ctrl+left_square_bracket": b"\x1b",
    "ctrl+question_mark": b"\x7f",
    "ctrl+j": b"\n",
    "ctrl+m": b"\r",
    "ctrl+i": b"\t",
    "ctrl+h": b"\x08",
    "ctrl+enter": b"\r",
    "shift+enter": b"\r",
    "ctrl+backspace": b"\x08",
    "shift+backspace": b"\x7f",
    "shift+space": b" ",
}
_MODIFIER_BITS = {"shift": 1, "alt": 2, "meta": 2, "ctrl": 4}


def _split(key: str) -> tuple[set[str], str]:
    parts = key.split("+")
    # "ctrl+plus" style names never contain a literal "+", so the last part is the key
    return set(parts[:-1]), parts[-1]


def _special(mods: set[str], name: str, app_cursor: bool) -> bytes | None:
    bits = sum(_MODIFIER_BITS.get(m, 0) for m in mods)
    code = f";{bits + 1}" if bits else ""
    if name in _CURSOR:
        final = _CURSOR[name]
        if code:
            return f"{_CSI}1{code}{final}".encode()
        return (f"\x1bO{final}" if app_cursor else f"{_CSI}{final}").encode()
    if name in _TILDE:
        return f"{_CSI}{_TILDE[name]}{code}~".encode()
    if name in _SS3:
        final = _SS3[name]
        return (f"{_CSI}1{code}{final}" if code else f"\x1bO{final}").encode()
    return None


def key_to_bytes(key: str, character: str | None, *, app_cursor: bool = False) -> bytes | None:
    """The bytes for a key press, or None for keys a terminal sends nothing for.

    ``key`` is Textual's key name (``ctrl+c``, ``shift+up``, ``alt+x``, ``a``); ``character`` the
    character it produced, if any; ``app_cursor`` the remote's DECCKM mode.
    """
    if key in _PLAIN:
        return _PLAIN[key]
    mods, name = _split(key)
    special = _special(mods, name, app_cursor)
    if special is not None:
        return special
    if "alt" in mods or "meta" in mods:
        rest = "+".join([*sorted(mods - {"alt", "meta"}), name])
        char = character if character and character.isprintable() else None
        if char is None and len(name) == 1:
            char = name.upper() if "shift" in mods else name
        inner = key_to_bytes(rest, char, app_cursor=app_cursor)
        return b"\x1b" + inner if inner else None
    if mods == {"ctrl"} and len(name) == 1 and name.isalpha():
        return bytes([ord(name.lower()) - ord("a") + 1])
    if mods == {"ctrl", "shift"} and len(name) == 1 and name.isalpha():
        return bytes([ord(name.lower()) - ord("a") + 1])
    if character:
        if character.isprintable():
            return character.encode()
        if len(character) == 1 and (ord(character) < 0x20 or ord(character) == 0x7F):
            return character.encode()
    return None


def encode_mouse(
    button: int, x: int, y: int, *, press: bool, sgr: bool, motion: bool = False
) -> bytes:
    """A mouse report for cell ``(x, y)`` (0-based): ``button`` 0-2, 64/65 for the wheel.

    ``sgr`` selects the ``ESC [<b;x;yM`` form (mode 1006); otherwise X10 ``ESC [M`` bytes,
    which cannot express cells past 222.
    """
    code = button + (32 if motion else 0)
    if sgr:
        return f"{_CSI}<{code};{x + 1};{y + 1}{'M' if press else 'm'}".encode()
    if not press:
        code = 3
    if x > 222 or y > 222:
        return b""
    return b"\x1b[M" + bytes([32 + code, 33 + x, 33 + y])


def encode_paste(text: str, *, bracketed: bool) -> bytes:
    """Pasted text as typed (newlines as CR), wrapped when the remote asked for it."""
    data = text.replace("\r\n", "\r").replace("\n", "\r").encode()
    if bracketed:
        return b"\x1b[200~" + data + b"\x1b[201~"
    return data
