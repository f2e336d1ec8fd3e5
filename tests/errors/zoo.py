"""The zoo (`pyro_air.zoo`): zoo names, manifests and weight files.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import torch

from tests.errors.builders import tiny_zoo
from tests.errors.table import Case, cli, raised

TITLE = "The zoo (`pyro_air.zoo`)"


def _zoo_unknown_model(tmp, mp):
    from pyro_air import zoo
    tiny_zoo(tmp, mp)
    return raised(zoo.load, "nope")


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _zoo_corrupted(tmp, mp):
    from pyro_air import zoo
    from pyro_air.zoo import manifest
    _flip_a_byte(tiny_zoo(tmp, mp))
    mp.setattr(manifest, "SHIPPED", (tmp / "zoo").resolve())  # as if it were the zoo installed with pyro-air
    return raised(zoo.load, "tiny")


def _zoo_corrupted_own(tmp, mp):
    from pyro_air import zoo
    _flip_a_byte(tiny_zoo(tmp, mp))
    return raised(zoo.load, "tiny")


def _zoo_missing_weights(tmp, mp):
    from pyro_air import zoo
    tiny_zoo(tmp, mp).unlink()
    return raised(zoo.load, "tiny")


def _zoo_no_manifest(tmp, mp):
    mp.setenv("PYRO_AIR_ZOO", str(tmp / "empty"))
    return cli("zoo", "list")


def _zoo_bad_name(tmp, mp):
    from pyro_air import zoo
    return raised(zoo.export, tmp, "My Model", description="d", command="c", budget={}, test_numbers={})


def _edit_manifest(tmp, change):
    import json
    path = tmp / "zoo" / "manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _zoo_edited(change, *argv):
    def trigger(tmp, mp):
        from pyro_air import zoo
        tiny_zoo(tmp, mp)
        _edit_manifest(tmp, change)
        return cli(*argv) if argv else raised(zoo.load, "tiny")
    return trigger


def _zoo_linked_out(tmp, mp):
    from pyro_air import zoo
    path = tiny_zoo(tmp, mp)
    path.rename(tmp / "outside.pt")
    path.symlink_to(tmp / "outside.pt")
    return raised(zoo.load, "tiny")


def _zoo_code(tmp, mp):
    from pyro_air import zoo
    from pyro_air.zoo import manifest
    path = tiny_zoo(tmp, mp)
    torch.save({"format_version": 2, "model_state": _Payload(), "guide_state": {}}, path)
    _edit_manifest(tmp, lambda doc: doc["models"][0].update(sha256=manifest.sha256(path),
                                                             size_bytes=path.stat().st_size))
    return raised(zoo.load, "tiny")


def _zoo_upper_case(tmp, mp):
    tiny_zoo(tmp, mp)
    return cli("evaluate", "ZOO:tiny")


def _zoo_escaping_output(tmp, mp):
    tiny_zoo(tmp, mp)
    _edit_manifest(tmp, lambda doc: doc["models"][0].update(name="../../escaped"))
    mp.chdir(tmp)
    return cli("diagnose", "zoo:../../escaped")


class _Payload:
    """Unpickling it calls print (a malicious file would call os.system)."""

    def __reduce__(self):
        return (print, ("a pickle payload ran",))


CASES = [
    Case("zoo-unknown-model", "`pyro_air.zoo.load(NAME)` / `pyro-air evaluate zoo:NAME` with a name the zoo does "
         "not hold", "KeyError", "unknown zoo model 'nope'; the zoo at …/zoo holds: tiny. List them with `pyro-air "
         "zoo list`.", _zoo_unknown_model),
    Case("zoo-corrupted-weights", "a shipped zoo weight file whose bytes differ from the manifest's SHA-256 "
         "(damaged, or replaced)", "ZooError", "…/weights/tiny.pt is not the file the zoo manifest lists for 'tiny' "
         "(SHA-256 …, … bytes; the manifest records …, … bytes): it is corrupted or was tampered with, so it is not "
         "loaded. To fix it, reinstall pyro-air (pip install --force-reinstall --no-deps pyro-air; in a source "
         "checkout: git checkout -- pyro_air/zoo)", _zoo_corrupted),
    Case("zoo-corrupted-weights-own", "the same in a zoo of your own (`$PYRO_AIR_ZOO` or `root=`)", "ZooError",
         "…/weights/tiny.pt is not the file the zoo manifest lists for 'tiny' (…): it is corrupted or was tampered "
         "with, so it is not loaded. To fix it, export the model again into …/zoo with pyro_air.zoo.export, or "
         "unset $PYRO_AIR_ZOO to use the models shipped with pyro-air", _zoo_corrupted_own),
    Case("zoo-missing-weights", "a zoo weight file the manifest lists is missing", "ZooError",
         "the zoo lists 'tiny' but its weight file …/weights/tiny.pt is missing; export the model again into …/zoo "
         "with pyro_air.zoo.export, or unset $PYRO_AIR_ZOO to use the models shipped with pyro-air",
         _zoo_missing_weights),
    Case("zoo-no-manifest", "`$PYRO_AIR_ZOO` naming a directory without a zoo manifest", "exit 2",
         "pyro-air: error: no zoo manifest at …/empty/manifest.json; point $PYRO_AIR_ZOO (or root=) at a directory "
         "written by pyro_air.zoo.export, or unset it to use the models shipped with pyro-air", _zoo_no_manifest),
    Case("zoo-bad-name", "`pyro_air.zoo.export` with a name that is not a plain file name", "ValueError",
         "a zoo model's name is also its file name: lower-case letters, digits, '.', '_' and '-', starting with a "
         "letter or digit; got 'My Model'", _zoo_bad_name),
    Case("zoo-format-version-type", "a zoo manifest whose `format_version` is not an integer (e.g. \"1\")", "ZooError",
         "…/zoo/manifest.json is not a readable zoo manifest (\"format_version\" must be an integer >= 1, got '1'); "
         "export the model again into …/zoo with pyro_air.zoo.export, or unset $PYRO_AIR_ZOO to use the models "
         "shipped with pyro-air", _zoo_edited(lambda doc: doc.update(format_version="1"))),
    Case("zoo-entry-missing-key", "a zoo manifest entry without `file`, `spec`, `check`, `sha256` or `size_bytes`",
         "exit 2", "pyro-air: error: …/zoo/manifest.json: the entry 'tiny' has no \"file\" (its weight file, relative "
         "to the zoo); export the model again into …/zoo with pyro_air.zoo.export, or unset $PYRO_AIR_ZOO to use the "
         "models shipped with pyro-air", _zoo_edited(lambda doc: doc["models"][0].pop("file"), "zoo", "list")),
    Case("zoo-entry-wrong-type", "a zoo manifest entry with a key of the wrong type (e.g. `\"file\": 5`)", "ZooError",
         "…/zoo/manifest.json: the entry 'tiny' has a \"file\" of type int, not str (its weight file, relative to the "
         "zoo); export the model again into …", _zoo_edited(lambda doc: doc["models"][0].update(file=5))),
    Case("zoo-entry-bad-name", "a zoo manifest entry whose name is not a plain file name (e.g. `../../escaped`)",
         "ZooError", "…/zoo/manifest.json: the entry '../../escaped' has a name that is not a plain file name "
         "(lower-case letters, digits, '.', '_' and '-', starting with a letter or digit); export the model again "
         "into …", _zoo_edited(lambda doc: doc["models"][0].update(name="../../escaped"))),
    Case("zoo-duplicate-name", "a zoo manifest listing a name twice", "ZooError",
         "…/zoo/manifest.json: the entry 'tiny' is listed twice (names must be unique); export the model again into …",
         _zoo_edited(lambda doc: doc["models"].append(dict(doc["models"][0])))),
    Case("zoo-weights-linked-out", "a zoo weight file that is a symbolic link out of the zoo (even with the listed "
         "bytes)", "ZooError", "…/zoo/manifest.json: the entry 'tiny' lists the file 'weights/tiny.pt', outside "
         "the zoo directory (symbolic links resolved); export the model again into …", _zoo_linked_out),
    Case("zoo-spec-does-not-fit", "a zoo manifest entry whose spec was edited (e.g. another `hidden` size)",
         "ZooError", "the weights of 'tiny' (…/weights/tiny.pt) do not fit the modules its manifest spec builds "
         "(RuntimeError: Error(s) in loading state_dict for BernoulliVAE: size mismatch for …): the entry's spec was "
         "edited; export the model again into …",
         _zoo_edited(lambda doc: doc["models"][0]["spec"]["model"]["cfg"].update(hidden=[9]))),
    Case("zoo-code-in-weights", "a zoo weight file holding code, its hash edited to match", "CheckpointError",
         "…/weights/tiny.pt is not a readable checkpoint: it holds a reference to print, not only tensors and plain "
         "values, so it was not loaded (loading it could run code). It was not written by pyro-air as it is: use a "
         "file from a source you trust, or train again", _zoo_code),
    Case("zoo-upper-case-prefix", "`pyro-air evaluate ZOO:NAME` (the prefix in another case)", "exit 2",
         "pyro-air: error: 'ZOO:tiny': a zoo model is named with a lower-case prefix, zoo:NAME (e.g. zoo:tiny); see "
         "`pyro-air zoo list`", _zoo_upper_case),
    Case("zoo-output-outside", "`pyro-air diagnose zoo:NAME` with a NAME that would put `runs/zoo-NAME` elsewhere",
         "exit 2", "pyro-air: error: a zoo model's name is also its file name: lower-case letters, digits, '.', '_' "
         "and '-', starting with a letter or digit; got '../../escaped'", _zoo_escaping_output),
]
