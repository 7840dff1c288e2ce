"""The command line: a quiet, instant start and errors that say what is wrong."""

import os
import shutil
import subprocess
import sys

import pytest

from ulmfit_tf import cli, export
from ulmfit_tf.presets import DEFAULT_PRESET, PRESETS_DIR

BASE_LM = os.path.join(PRESETS_DIR, DEFAULT_PRESET)
CONSOLE_SCRIPT = shutil.which("ulmfit-tf")


def test_help_and_parser_import_no_tensorflow():
    # What the `ulmfit-tf` console script does, with argv[0] as it sets it.
    script = ("import sys; sys.argv = ['/usr/bin/ulmfit-tf', '--help']\n"
              "from ulmfit_tf.cli import main\n"
              "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
              "print('imported:', sorted(m for m in sys.modules if m.split('.')[0] in "
              "('tensorflow', 'keras', 'torch')), 'exit:', code)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage: ulmfit-tf" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "imported: [] exit: 0"
    assert result.stderr == ""


@pytest.mark.skipif(CONSOLE_SCRIPT is None, reason="the package is not installed")
def test_console_script_hides_tensorflow_start_up_log(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    # A command that starts TensorFlow, then fails on its argument.
    result = subprocess.run([CONSOLE_SCRIPT, "predict", BASE_LM, "Who ?"], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"ulmfit-tf predict: error: `run` must be a classifier run directory. Received: "
        f"{BASE_LM!r}, which holds a language-model."]
    verbose = subprocess.run([CONSOLE_SCRIPT, "--verbose", "predict", BASE_LM, "Who ?"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert len(verbose.stderr.splitlines()) > 1  # TensorFlow's own lines are back


def test_tensorflow_log_filter_keeps_errors_and_tracebacks():
    captured = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796283500.526821    2770 port.cc:153] oneDNN custom operations are on.\n"
        "W0000 00:00:1796283500.527290    2770 something.cc:31] a warning\n"
        "I0000 00:00:1796283500.658088    2770 cpu_feature_guard.cc:227] This TensorFlow...\n"
        "To enable the following instructions: AVX2 AVX512F, in other operations, rebuild.\n"
        "E0000 00:00:1796283651.873095    5344 cuda_platform.cc:52] failed call to cuInit: x\n"
        "E0000 00:00:1796283651.873095    5344 other.cc:1] a real error\n"
        "  its second line\n"
        "Traceback (most recent call last):\n")
    assert cli._quiet_tensorflow_log(captured) == (
        "E0000 00:00:1796283651.873095    5344 other.cc:1] a real error\n"
        "  its second line\n"
        "Traceback (most recent call last):\n")


def test_export_flag_defaults_are_the_library_defaults():
    # The parser must not import TensorFlow, so it restates them.
    args = cli.build_parser().parse_args(["export", "run", "--out", "x"])
    assert args.max_chars == export.DEFAULT_MAX_CHARS
    assert args.max_request_chars == export.DEFAULT_MAX_REQUEST_CHARS
    assert args.max_request_tokens == export.DEFAULT_MAX_REQUEST_TOKENS
    assert args.version is None and not args.overwrite
    assert args.matmul_precision == "float32"
    for command in (["evaluate", "trec", "run"], ["predict", "run", "Who ?"]):
        assert cli.build_parser().parse_args(command).matmul_precision == "float32"


def test_bfloat16_matmuls_are_refused_for_a_language_model_export(tmp_path, capsys):
    assert cli.main(["export", BASE_LM, "--out", str(tmp_path / "x"),
                     "--matmul-precision", "bfloat16"]) == 2
    assert "classifier exports only" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")


def test_train_classifier_defaults_come_from_the_recipe():
    """The CLI sets only the flags given: every other setting is the recipe's
    (ClassifierConfig's), so the CLI and the library run one recipe."""
    from ulmfit_tf.training.classifier import RECIPES, ClassifierConfig

    assert cli.CLASSIFIER_RECIPES == tuple(RECIPES)
    parse = lambda *flags: cli.build_parser().parse_args(
        ["train-classifier", "trec", "--out", "x", *flags])
    assert cli._given_classifier_settings(parse()) == {"backwards": False, "seed": 0}
    assert ClassifierConfig.recipe(parse().recipe) == ClassifierConfig()
    args = parse("--recipe", "paper", "--epochs", "7", "--factor", "1", "--patience", "none",
                 "--no-restore-best", "--no-gradual-unfreezing")
    config = ClassifierConfig.recipe(args.recipe, **cli._given_classifier_settings(args))
    paper = ClassifierConfig.recipe("paper")
    assert (config.epochs, config.discriminative_factor, config.patience) == (7, None, None)
    assert not config.restore_best and not config.gradual_unfreezing
    assert (config.max_lr, config.schedule) == (paper.max_lr, paper.schedule) == (1e-2,
                                                                                  "stlr_stages")
    with pytest.raises(ValueError, match="`recipe` must be one of"):
        ClassifierConfig.recipe("fastest")
    # From scratch: one rate, no unfreezing, unless a divisor is given.
    scratch = cli._classifier_config(parse())
    assert scratch.discriminative_factor is None and not scratch.gradual_unfreezing
    assert scratch.tune_lr and not cli._classifier_config(parse("--no-tune")).tune_lr
    assert scratch.batch_size == 64 and ClassifierConfig().batch_size == "auto"
    from ulmfit_tf.tasks.text_classifier import TextClassifier
    from ulmfit_tf.training.classifier import SMALL_TRAINING_SET

    flags = {a.dest: a for a in cli.build_parser()._subparsers._group_actions[0]
             .choices["train-classifier"]._actions}
    for text in (flags["batch_size"].help, TextClassifier.fit.__doc__):  # where "auto" is told
        assert f"fewer than {SMALL_TRAINING_SET:,}" in " ".join(text.split())
    assert cli._classifier_config(parse("--lm", "run", "--batch-size", "16")).batch_size == 16
    given_rate = cli._classifier_config(parse("--lr", "3e-3"))
    assert given_rate.max_lr == 3e-3 and not given_rate.tune_lr  # a rate given is kept
    assert not ClassifierConfig().tune_lr  # with a language model: the fixed peak
    assert cli._classifier_config(parse("--factor", "2")).discriminative_factor == 2
    assert cli._classifier_config(parse("--lm", "run")) == ClassifierConfig()
    assert cli._classifier_config(parse("--optimizer", "sgd")).optimizer == "sgd"
    assert cli._classifier_config(parse("--monitor", "val_accuracy")).monitor == "val_accuracy"
    assert cli._classifier_config(parse("--lm", "run")).bag_of_ngrams
    assert not cli._classifier_config(parse("--lm", "run", "--no-bag-of-ngrams")).bag_of_ngrams
    assert not cli._classifier_config(parse("--lm", "run", "--recipe", "paper")).bag_of_ngrams


def test_optimizer_choices_are_the_library_s():
    from ulmfit_tf.training.classifier import ClassifierConfig
    from ulmfit_tf.training.language_model import LanguageModelConfig
    from ulmfit_tf.training.optimizers import OPTIMIZERS

    assert cli.OPTIMIZERS == OPTIMIZERS
    for command in (["pretrain", "c", "--out", "x"],
                    ["finetune-lm", "c", "--pretrained", "p", "--out", "x"]):
        assert cli.build_parser().parse_args([*command, "--optimizer", "lion"]).optimizer == \
            "lion"
    for config in (ClassifierConfig, LanguageModelConfig):
        with pytest.raises(ValueError, match="`optimizer` must be one of"):
            config(optimizer="adagrad")


def test_truncated_model_file_is_named(tmp_path, capsys):
    run = tmp_path / "lm"
    shutil.copytree(BASE_LM, run)
    with open(run / "model.keras", "r+b") as f:
        f.truncate(os.path.getsize(run / "model.keras") // 2)
    assert cli.main(["generate", str(run), "the"]) == 2
    err = capsys.readouterr().err
    assert f"Could not read the model file {str(run / 'model.keras')!r}" in err
    assert "not a .keras archive" in err


def test_wrong_kind_or_missing_run(tmp_path, capsys):
    assert cli.main(["predict", BASE_LM, "Who ?"]) == 2
    assert "must be a classifier run directory" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert f"No run directory at {str(tmp_path / 'nope')!r}" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")


def test_non_utf8_csv_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "reviews.csv"
    path.write_bytes("text,label\nfine,pos\ncaf\u00e9 au lait,neg\n".encode("latin-1"))
    assert cli.main(["evaluate", str(path), str(tmp_path / "no-run")]) == 2
    err = capsys.readouterr().err
    assert f"{str(path)!r} is not valid utf-8: line 3, byte 4" in err
    assert "--encoding" in err
    # With the encoding given, reading succeeds and the next problem is the run.
    assert cli.main(["evaluate", str(path), str(tmp_path / "no-run"), "--encoding",
                     "latin-1"]) == 2
    assert "No run directory at" in capsys.readouterr().err


def test_demo_refuses_a_language_model_that_reads_the_other_way(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "demo"),
                     "--pretrained-backward", BASE_LM]) == 2
    err = capsys.readouterr().err
    assert f"`--pretrained-backward` must be a backward language model. Received: " \
           f"{BASE_LM!r}" in err
    assert not os.path.exists(tmp_path / "demo")
