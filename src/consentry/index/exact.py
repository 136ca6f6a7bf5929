"""Exact-value index for md5/sha1/sha256/photodna: value -> entry ids."""

from __future__ import annotations


class ExactIndex:
    def __init__(self) -> None:
        self._by_value: dict[bytes | str, set[int] | int] = {}
        self._value_of: dict[int, bytes | str] = {}

    @staticmethod
    def _key(value: str) -> bytes | str:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return value

    def add(self, value: str, entry_id: int) -> None:
        key = self._key(value)
        old = self._value_of.get(entry_id)
        if old is not None and old != key:
            self.remove_id(entry_id)
        cur = self._by_value.get(key)
        if cur is None:
            self._by_value[key] = entry_id
        elif isinstance(cur, int):
            if cur != entry_id:
                self._by_value[key] = {cur, entry_id}
        else:
            cur.add(entry_id)
        self._value_of[entry_id] = key

    def remove_id(self, entry_id: int) -> None:
        key = self._value_of.pop(entry_id, None)
        if key is None:
            return
        cur = self._by_value.get(key)
        if isinstance(cur, int):
            if cur == entry_id:
                del self._by_value[key]
        elif cur is not None:
            cur.discard(entry_id)
            if len(cur) == 1:
                self._by_value[key] = next(iter(cur))
            elif not cur:
                del self._by_value[key]

    def lookup(self, value: str) -> set[int]:
        cur = self._by_value.get(self._key(value))
        if cur is None:
            return set()
        return {cur} if isinstance(cur, int) else set(cur)

    def __len__(self) -> int:
        return len(self._value_of)
