"""Messages that say what to do: a misspelt matrix axis, an image under another extension, a
row without a model, a run looked for in the wrong folder, options a command does not take,
the version, where the simulator lists its tasks."""

from __future__ import annotations

import json
from importlib.metadata import version

import yaml

from batchgen.simulator import SimulatorConfig
from batchgen.simulator.server import banner
from tests.conftest import run_cli, write_manifest


def edit(manifest, change) -> None:
    doc = yaml.safe_load(manifest.read_text())
    change(doc)
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_misspelt_matrix_axis_gets_a_did_you_mean(tmp_path, capsys):
    """`matrix.duraton` is refused with "did you mean 'duration'?"."""
    manifest = write_manifest(tmp_path, 1)
    edit(manifest, lambda doc: doc.update(matrix={"duraton": [5, 10]}))
    assert run_cli("validate", manifest) == 2
    assert "not a job field (did you mean 'duration'?)" in capsys.readouterr().out


def test_a_missing_image_says_where_it_looked_and_what_is_there(tmp_path, capsys):
    """`images/img0.jpeg` names the path it looked for and suggests `img0.jpg` beside it."""
    manifest = write_manifest(tmp_path, 1)
    edit(manifest, lambda doc: doc["rows"][0].update(image="images/img0.jpeg"))
    assert run_cli("validate", manifest, "--json") == 2
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert str(tmp_path / "images" / "img0.jpeg") in problem["message"]
    assert problem["message"].endswith("did you mean img0.jpg?")


def test_a_row_without_a_model_is_named_by_validate(tmp_path, capsys):
    """Rows that set no model_name pass, but `validate` says they go as kling-v1, an old
    model, and how to choose one."""
    manifest = write_manifest(tmp_path, 2)
    edit(manifest, lambda doc: doc.pop("defaults"))
    assert run_cli("validate", manifest) == 0
    said = capsys.readouterr()
    assert "ok, 2 job(s)" in said.out
    assert "2 job(s) set no model_name: they are sent as kling-v1" in said.err


def test_no_state_found_says_which_output_folder_was_looked_in(tmp_path, capsys):
    """`status M -o elsewhere` of a manifest never run there names the folder and -o."""
    manifest = write_manifest(tmp_path, 1)
    assert run_cli("status", manifest, "-o", tmp_path / "elsewhere") == 2
    said = capsys.readouterr().err
    assert "the folder -o names" in said and str(tmp_path / "elsewhere") in said


def test_adopt_and_reconcile_refuse_options_only_a_run_takes(tmp_path, capsys):
    """`adopt ... -c 5` and `reconcile ... --progress json` are usage errors, not ignored."""
    manifest = write_manifest(tmp_path, 1)
    adopt = ("adopt", manifest, "--job", "clip-000", "--task", "1", "-c", "5")
    assert run_cli(*adopt) == 2
    assert "No such option '-c'" in capsys.readouterr().err
    assert run_cli("reconcile", manifest, "--progress", "json") == 2


def test_version_is_printed(capsys):
    """`batchgen --version` prints the installed version."""
    assert run_cli("--version") == 0
    assert capsys.readouterr().out.strip() == f"batchgen, version {version('batchgen')}"


def test_the_simulator_says_where_its_task_ids_are():
    """Its banner names the stats URL that lists every task by external_task_id."""
    shown = banner(SimulatorConfig(), "http://127.0.0.1:8765")
    assert "http://127.0.0.1:8765/_sim/stats?tasks=1" in shown and "adopt" in shown


def test_one_mistake_in_defaults_is_said_once_not_once_per_job(tmp_path, capsys):
    """`defaults: {sound: on}` with kling-v1 over 3 rows x 2 durations: one line naming
    `defaults.sound` and the 6 jobs it reaches, not six lines pointing at rows."""
    manifest = write_manifest(tmp_path, 3)
    edit(manifest, lambda doc: doc.update(defaults={"model_name": "kling-v1", "sound": "on"}))
    edit(manifest, lambda doc: doc.update(matrix={"duration": [5, 10]}))
    assert run_cli("validate", manifest) == 2
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error")]
    assert len(lines) == 1
    assert lines[0].startswith("error: field 'defaults.sound': kling-v1 has no sound option")
    assert "(in 6 job(s): clip-000__duration-5" in lines[0]
