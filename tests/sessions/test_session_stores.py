"""The SessionStore interface, the same tests for the memory, SQLite and Redis stores."""

from __future__ import annotations

import threading

import pytest

from dibble.sessions import Changes, SessionStore, new_session_id

NOW = 1_800_000_000.0
HOUR = 3600.0


def fresh(store: SessionStore, now: float = NOW, span: float = HOUR) -> str:
    sid = new_session_id()
    store.create(sid, now, now + span)
    return sid


def save(store: SessionStore, sid: str, service: str = "svc", now: float = NOW, **kw: str) -> bool:
    return store.save(sid, service, Changes(dict(kw)), now, now + HOUR)


def test_unknown_ids_load_as_nothing(store: SessionStore) -> None:
    assert store.load(new_session_id(), "svc", NOW) is None
    assert not save(store, new_session_id(), a='"x"')


def test_a_new_id_has_no_data(store: SessionStore) -> None:
    sid = fresh(store)
    loaded = store.load(sid, "svc", NOW)
    assert loaded is not None
    assert loaded.record is None
    assert loaded.id_expires == NOW + HOUR


def test_save_then_load_round_trips_json_texts(store: SessionStore) -> None:
    sid = fresh(store)
    assert save(store, sid, a='"x"', b="[1,2]", c='{"\\u00e9":null}')
    loaded = store.load(sid, "svc", NOW + 1)
    assert loaded is not None and loaded.record is not None
    record = loaded.record
    assert record.values == {"a": '"x"', "b": "[1,2]", "c": '{"\\u00e9":null}'}
    assert record.started == NOW
    assert record.modified == NOW
    assert record.expires == NOW + HOUR


def test_services_are_kept_apart(store: SessionStore) -> None:
    sid = fresh(store)
    save(store, sid, "one", a="1")
    save(store, sid, "two", a="2")
    one = store.load(sid, "one", NOW)
    two = store.load(sid, "two", NOW)
    assert one is not None and one.record is not None and one.record.values == {"a": "1"}
    assert two is not None and two.record is not None and two.record.values == {"a": "2"}


def test_changes_merge_key_by_key(store: SessionStore) -> None:
    sid = fresh(store)
    save(store, sid, a="1", b="2")
    # Two requests that loaded {a, b}: one sets c, the other deletes a.
    store.save(sid, "svc", Changes({"c": "3"}), NOW + 1, NOW + HOUR)
    store.save(sid, "svc", Changes({}, frozenset({"a"})), NOW + 2, NOW + HOUR)
    loaded = store.load(sid, "svc", NOW + 3)
    assert loaded is not None and loaded.record is not None
    assert loaded.record.values == {"b": "2", "c": "3"}
    assert loaded.record.started == NOW
    assert loaded.record.modified == NOW + 2


def test_clear_removes_everything_then_applies_its_sets(store: SessionStore) -> None:
    sid = fresh(store)
    save(store, sid, a="1", b="2")
    store.save(sid, "svc", Changes({"z": "26"}, cleared=True), NOW + 5, NOW + HOUR)
    loaded = store.load(sid, "svc", NOW + 6)
    assert loaded is not None and loaded.record is not None
    assert loaded.record.values == {"z": "26"}
    assert loaded.record.started == NOW  # the session is the same one


def test_a_touch_extends_without_modifying(store: SessionStore) -> None:
    sid = fresh(store)
    save(store, sid, a="1")
    assert store.save(sid, "svc", Changes({}), NOW + 100, NOW + 100 + HOUR)
    loaded = store.load(sid, "svc", NOW + 101)
    assert loaded is not None and loaded.record is not None
    assert loaded.record.modified == NOW
    assert loaded.record.expires == NOW + 100 + HOUR
    assert loaded.id_expires == NOW + 100 + HOUR


def test_expired_ids_are_gone(store: SessionStore) -> None:
    sid = fresh(store, span=10)
    assert store.load(sid, "svc", NOW + 10) is None
    assert not save(store, sid, now=NOW + 11, a="1")


def test_an_expired_record_is_returned_for_its_hook_and_emptied_on_save(
    store: SessionStore,
) -> None:
    sid = fresh(store, span=10 * HOUR)
    store.save(sid, "svc", Changes({"a": "1"}), NOW, NOW + 10)
    loaded = store.load(sid, "svc", NOW + 20)
    assert loaded is not None and loaded.record is not None
    assert loaded.record.expires <= NOW + 20
    # A save on top of an expired record does not merge into its old data.
    store.save(sid, "svc", Changes({"b": "2"}), NOW + 20, NOW + 20 + HOUR)
    again = store.load(sid, "svc", NOW + 21)
    assert again is not None and again.record is not None
    assert again.record.values == {"b": "2"}
    assert again.record.started == NOW + 20


def test_take_hands_an_expired_record_to_one_caller(store: SessionStore) -> None:
    sid = fresh(store, span=10 * HOUR)
    store.save(sid, "svc", Changes({"a": "1"}), NOW, NOW + 10)
    assert store.take(sid, "svc", NOW + 5) is None  # not expired yet
    taken = store.take(sid, "svc", NOW + 20)
    assert taken is not None
    assert (taken.sid, taken.service, taken.values) == (sid, "svc", {"a": "1"})
    assert store.take(sid, "svc", NOW + 20) is None
    loaded = store.load(sid, "svc", NOW + 20)
    assert loaded is not None and loaded.record is None


def test_take_expired_returns_records_of_expired_ids_and_expired_records(
    store: SessionStore,
) -> None:
    dead = fresh(store, span=10)
    store.save(dead, "one", Changes({"a": "1"}), NOW, NOW + 10)
    store.save(dead, "two", Changes({"b": "2"}), NOW, NOW + 10)
    live = fresh(store, span=10 * HOUR)
    store.save(live, "short", Changes({"c": "3"}), NOW, NOW + 10)
    store.save(live, "long", Changes({"d": "4"}), NOW, NOW + 10 * HOUR)
    taken = store.take_expired(NOW + 60)
    assert {(t.sid, t.service, tuple(t.values.items())) for t in taken} == {
        (dead, "one", (("a", "1"),)),
        (dead, "two", (("b", "2"),)),
        (live, "short", (("c", "3"),)),
    }
    assert store.take_expired(NOW + 60) == []
    assert store.load(dead, "one", NOW) is None  # the id went too
    kept = store.load(live, "long", NOW + 60)
    assert kept is not None and kept.record is not None and kept.record.values == {"d": "4"}
    assert [info.sid for info in store.sessions(NOW + 60)] == [live]


def test_take_expired_in_batches(store: SessionStore) -> None:
    for _ in range(7):
        sid = fresh(store, span=10)
        save(store, sid, a="1")
    first = store.take_expired(NOW + 2 * HOUR, limit=3)
    rest = store.take_expired(NOW + 2 * HOUR, limit=100)
    assert len(first) == 3
    assert len(rest) == 4


def test_increment_is_atomic_and_creates_the_record(store: SessionStore) -> None:
    sid = fresh(store)
    assert store.increment(sid, "svc", "n", 1, NOW, NOW + HOUR) == 1
    assert store.increment(sid, "svc", "n", 41, NOW, NOW + HOUR) == 42
    assert store.increment(sid, "svc", "n", -50, NOW, NOW + HOUR) == -8
    loaded = store.load(sid, "svc", NOW)
    assert loaded is not None and loaded.record is not None
    assert loaded.record.values == {"n": "-8"}
    assert store.increment(new_session_id(), "svc", "n", 1, NOW, NOW + HOUR) is None


def test_increment_refuses_what_is_not_an_integer(store: SessionStore) -> None:
    sid = fresh(store)
    save(store, sid, s='"text"', f="1.5")
    with pytest.raises(ValueError, match="not an integer"):
        store.increment(sid, "svc", "s", 1, NOW, NOW + HOUR)
    with pytest.raises(ValueError, match="integer"):
        store.increment(sid, "svc", "f", 1, NOW, NOW + HOUR)
    loaded = store.load(sid, "svc", NOW)
    assert loaded is not None and loaded.record is not None
    assert loaded.record.values == {"s": '"text"', "f": "1.5"}


def test_concurrent_increments_lose_nothing(store: SessionStore) -> None:
    sid = fresh(store)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(25):
            store.increment(sid, "svc", "n", 1, NOW, NOW + HOUR)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = store.load(sid, "svc", NOW)
    assert loaded is not None and loaded.record is not None
    assert loaded.record.values["n"] == "200"


def test_concurrent_saves_of_different_keys_all_land(store: SessionStore) -> None:
    sid = fresh(store)
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(10):
            store.save(sid, "svc", Changes({f"k{i}.{j}": str(j)}), NOW, NOW + HOUR)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = store.load(sid, "svc", NOW)
    assert loaded is not None and loaded.record is not None
    assert len(loaded.record.values) == 80


def test_rename_moves_every_service(store: SessionStore) -> None:
    old = fresh(store)
    save(store, old, "one", a="1")
    save(store, old, "two", b="2")
    new = new_session_id()
    assert store.rename(old, new, NOW)
    assert store.load(old, "one", NOW) is None
    one = store.load(new, "one", NOW)
    two = store.load(new, "two", NOW)
    assert one is not None and one.record is not None and one.record.values == {"a": "1"}
    assert two is not None and two.record is not None and two.record.values == {"b": "2"}
    assert not store.rename(old, new_session_id(), NOW)
    # Cleanup still finds the moved records.
    assert {t.service for t in store.take_expired(NOW + 2 * HOUR)} == {"one", "two"}


def test_delete_removes_the_id_and_its_data(store: SessionStore) -> None:
    sid = fresh(store)
    save(store, sid, "one", a="1")
    other = fresh(store)
    save(store, other, "one", a="2")
    store.delete(sid)
    store.delete(sid)  # twice is harmless
    assert store.load(sid, "one", NOW) is None
    assert not save(store, sid, "one", a="3")
    loaded = store.load(other, "one", NOW)
    assert loaded is not None and loaded.record is not None
    taken = store.take_expired(NOW + 2 * HOUR)
    assert [(t.sid, t.service) for t in taken] == [(other, "one")]


def test_sessions_lists_live_ones_oldest_first(store: SessionStore) -> None:
    first = fresh(store, now=NOW)
    save(store, first, "b", a="1")
    save(store, first, "a", a="1")
    second = fresh(store, now=NOW + 5)
    dead = fresh(store, now=NOW - HOUR, span=10)
    infos = store.sessions(NOW + 10)
    assert [info.sid for info in infos] == [first, second]
    assert infos[0].services == ("a", "b")
    assert infos[1].services == ()
    assert dead not in [info.sid for info in infos]
    assert len(store.sessions(NOW + 10, limit=1)) == 1


def test_keys_and_values_with_odd_characters(store: SessionStore) -> None:
    sid = fresh(store)
    key = "k:é/\u2603 spaced\tand 'quoted'"
    service = "svc:with/colons and spaces"
    assert store.save(sid, service, Changes({key: '"v:\\u0000"'}), NOW, NOW + HOUR)
    loaded = store.load(sid, service, NOW)
    assert loaded is not None and loaded.record is not None
    assert loaded.record.values == {key: '"v:\\u0000"'}


def test_a_batch_of_saves_with_odd_characters_and_many_keys(store: SessionStore) -> None:
    # A batch is written as one text per store call (Redis: one JSON argument for
    # every save): quotes, backslashes, NULs, emoji and size must all survive.
    odd, many, gone = fresh(store), fresh(store), new_session_id()
    key = 'k:\u00e9 "quoted" back\\slash \U0001f600'
    service = "svc\x00with a NUL"
    keys = {f"key{i}": str(i) for i in range(3000)}
    saved = store.save_many(
        [
            (odd, service, Changes({key: '"v:\\u0000"'}), NOW, NOW + HOUR),
            (many, "svc", Changes(keys), NOW, NOW + HOUR),
            (gone, "svc", Changes({"a": "1"}), NOW, NOW + HOUR),  # never made
            (odd, service, Changes({}, frozenset({key}), False), NOW + 1, NOW + HOUR),
            (odd, service, Changes({"after": "2"}), NOW + 2, NOW + HOUR),
        ]
    )
    assert saved == [True, True, False, True, True]
    loaded = store.load_many([(odd, service, NOW + 3), (many, "svc", NOW + 3), (gone, "svc", NOW)])
    assert loaded[0] is not None and loaded[0].record is not None
    assert loaded[0].record.values == {"after": "2"}
    assert loaded[1] is not None and loaded[1].record is not None
    assert loaded[1].record.values == keys
    assert loaded[2] is None
