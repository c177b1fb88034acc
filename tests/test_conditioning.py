"""Tests for videosynth.conditioning: contract, null condition, dropout, tokenizer, pretrained path."""

import pytest
import torch

from videosynth.conditioning import (
    CONDITIONERS,
    ClassConditioner,
    ConditionConfig,
    PretrainedTextConditioner,
    TextConditioner,
    WordTokenizer,
    build_conditioner,
    fit_condition_config,
)
from videosynth.errors import ConfigError, MissingWeightsError, VideoSynthError

DIM = 16
NUM_CLASSES = 4
MAX_LEN = 8
CAPTIONS = [
    "a red square moves left",
    "a blue circle bounces",
    "the digit 3 moves up",
    "a red circle moves right",
]
DROPOUT_DRAWS = 4000  # enough samples that the dropout rate is within DROPOUT_TOL
DROPOUT_TOL = 0.05  # ~6 standard deviations for p = 0.3 and 4000 draws


def make_class(**overrides) -> ClassConditioner:
    cfg = ConditionConfig(kind="class", num_classes=NUM_CLASSES, dim=DIM, **overrides)
    return build_conditioner(cfg)


def make_text(**overrides) -> TextConditioner:
    cfg = ConditionConfig(kind="text", dim=DIM, max_len=MAX_LEN, text_layers=1, text_heads=2, **overrides)
    return build_conditioner(fit_condition_config(cfg, CAPTIONS, []))


# ----------------------------------------------------------------------------- tiny local HF encoder


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory):
    """A tiny random BERT + word-piece tokenizer saved with save_pretrained."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({w for c in CAPTIONS for w in c.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizer(str(vocab_file))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def make_pretrained(path, **overrides) -> PretrainedTextConditioner:
    cfg = ConditionConfig(kind="pretrained-text", dim=DIM, max_len=MAX_LEN, pretrained_path=str(path), **overrides)
    return build_conditioner(cfg)


@pytest.fixture(params=["class", "text", "pretrained-text"])
def conditioner(request, pretrained_dir):
    torch.manual_seed(0)
    if request.param == "class":
        return make_class(dropout=0.3)
    if request.param == "text":
        return make_text(dropout=0.3)
    return make_pretrained(pretrained_dir, dropout=0.3)


def batch(n: int = 4):
    labels = torch.arange(n) % NUM_CLASSES
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(n)]
    return labels, captions


# ----------------------------------------------------------------------------- contract, all kinds


def test_shapes_and_contract(conditioner):
    conditioner.eval()
    labels, captions = batch()
    cond = conditioner(labels, captions)
    assert cond.shape == (4, DIM) and cond.dtype == torch.float32
    assert conditioner.dim == DIM
    assert torch.isfinite(cond).all()
    tokens, mask = conditioner.tokens(labels, captions)
    assert tokens.shape[:2] == mask.shape and tokens.shape[0] == 4 and tokens.shape[2] == DIM
    assert mask.dtype == torch.bool and mask[:, 0].all()


def test_null_condition_for_missing(conditioner):
    conditioner.eval()
    labels, captions = batch()
    null_labels, null_captions = torch.full_like(labels, -1), [""] * len(captions)
    forced = conditioner(labels, captions, force_null=True)
    missing = conditioner(null_labels, null_captions)
    assert torch.allclose(forced, forced[:1].expand_as(forced))  # same vector for every sample
    assert torch.allclose(missing, forced)
    assert not torch.allclose(conditioner(labels, captions)[0], forced[0])
    tokens, mask = conditioner.tokens(labels, captions, force_null=True)
    assert mask[:, 0].all() and not mask[:, 1:].any()
    assert torch.allclose(tokens, tokens[:1].expand_as(tokens))


def test_different_inputs_give_different_outputs(conditioner):
    conditioner.eval()
    labels, captions = batch()
    cond = conditioner(labels, captions)
    distances = torch.cdist(cond, cond)  # (B, B)
    assert (distances + torch.eye(4)).min() > 1e-4


def test_dropout_rate_in_train_and_none_in_eval(conditioner):
    null = conditioner.eval()(torch.tensor([-1]), [""])[0]
    labels = torch.zeros(DROPOUT_DRAWS, dtype=torch.long)
    captions = [CAPTIONS[0]] * DROPOUT_DRAWS
    if isinstance(conditioner, PretrainedTextConditioner):  # keep the frozen encoder cheap
        labels, captions = labels[:400], captions[:400]
    with torch.no_grad():
        assert not torch.isclose(conditioner.eval()(labels, captions), null).all(1).any()
        torch.manual_seed(1)
        dropped = torch.isclose(conditioner.train()(labels, captions), null).all(1)
        torch.manual_seed(1)
        again = torch.isclose(conditioner.train()(labels, captions), null).all(1)
    tol = DROPOUT_TOL if len(labels) == DROPOUT_DRAWS else 3 * DROPOUT_TOL
    assert abs(dropped.float().mean().item() - 0.3) < tol
    assert torch.equal(dropped, again)  # seeded by torch's global RNG


def test_gradients_reach_trainable_parameters(conditioner):
    conditioner.train()
    labels, captions = batch()
    conditioner(labels, captions).sum().backward()
    grads = [p.grad for p in conditioner.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


# ----------------------------------------------------------------------------- class conditioner


@pytest.mark.parametrize("label", [NUM_CLASSES, -2])
def test_class_label_out_of_range(label):
    with pytest.raises(ConfigError, match=rf"label {label}.*\[-1, {NUM_CLASSES - 1}\]"):
        make_class()(torch.tensor([0, label]), ["", ""])


def test_class_needs_num_classes():
    with pytest.raises(ConfigError, match="num_classes"):
        build_conditioner(ConditionConfig(kind="class"))


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_vocab_order_and_determinism():
    vocab = WordTokenizer().fit(["b a", "A c b!", "b"], max_vocab=100)
    assert vocab == ["<pad>", "<unk>", "<cls>", "b", "a", "c"]  # frequency, then alphabetical
    assert WordTokenizer().fit(["b", "A c b!", "b a"]) == vocab
    assert WordTokenizer().fit(["b a", "A c b!", "b"], max_vocab=4) == vocab[:4]


def test_tokenizer_encode_unknown_padding_truncation():
    tok = WordTokenizer(["<pad>", "<unk>", "<cls>", "red", "ball"])
    ids, mask = tok.encode(["Red BALL, green", "", "red red red red red"], max_len=4)
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == (3, 4)
    assert ids.tolist() == [[2, 3, 4, 1], [2, 0, 0, 0], [2, 3, 3, 3]]
    assert mask.tolist() == [[True] * 4, [True, False, False, False], [True] * 4]
    assert tok.decode(ids[:1]) == ["red ball"]


def test_tokenizer_rejects_bad_vocab():
    with pytest.raises(ConfigError, match="must start with"):
        WordTokenizer(["red", "ball"])


# ----------------------------------------------------------------------------- text conditioner


def test_text_needs_vocab():
    with pytest.raises(ConfigError, match="fit the tokenizer on the dataset captions first"):
        build_conditioner(ConditionConfig(kind="text", dim=DIM))


def test_text_tokens_mask_and_unknown_words():
    text = make_text().eval()
    tokens, mask = text.tokens(None, ["a red square", "zzz qqq"])
    assert mask.sum(1).tolist() == [4, 3]
    assert torch.all(tokens[~mask] == 0)
    assert torch.allclose(text(None, ["zzz"]), text(None, ["qqq"]), atol=1e-6)  # both <unk>


def test_text_state_dict_round_trip():
    torch.manual_seed(0)
    a = make_text().eval()
    torch.manual_seed(1)
    b = make_text().eval()
    b.load_state_dict(a.state_dict())
    assert torch.allclose(a(None, CAPTIONS), b(None, CAPTIONS))


# ----------------------------------------------------------------------------- pretrained text conditioner


def test_pretrained_frozen_encoder_not_persisted(pretrained_dir):
    torch.manual_seed(0)
    a = make_pretrained(pretrained_dir).eval()
    state = a.state_dict()
    assert set(state) == {"proj.weight", "proj.bias", "null"}
    assert set(a.state_dict()) == set(state)
    assert all(not p.requires_grad for p in a.encoder.parameters())
    assert a.train().encoder.training is False  # frozen encoder stays in eval mode
    torch.manual_seed(1)
    b = make_pretrained(pretrained_dir).eval()
    b.load_state_dict(state)  # strict: the encoder keys come from the local directory
    assert torch.allclose(a(None, CAPTIONS), b(None, CAPTIONS))


def test_pretrained_nested_in_a_model(pretrained_dir):
    outer = torch.nn.ModuleDict({"cond": make_pretrained(pretrained_dir), "head": torch.nn.Linear(DIM, 1)})
    keys = set(outer.state_dict())
    assert keys == {"cond.proj.weight", "cond.proj.bias", "cond.null", "head.weight", "head.bias"}
    outer.load_state_dict(outer.state_dict())


def test_pretrained_unfrozen_is_persisted(pretrained_dir):
    cond = make_pretrained(pretrained_dir, freeze_pretrained=False)
    assert any(k.startswith("encoder.") for k in cond.state_dict())


def test_pretrained_missing_dir(tmp_path):
    missing = tmp_path / "no-such-encoder"
    with pytest.raises(MissingWeightsError, match="no-such-encoder.*config.json"):
        make_pretrained(missing)


def test_pretrained_invalid_dir(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match=str(tmp_path)):
        make_pretrained(tmp_path)


def test_pretrained_path_unset():
    pytest.importorskip("transformers")
    with pytest.raises(ConfigError, match="pretrained_path"):
        build_conditioner(ConditionConfig(kind="pretrained-text"))


# ----------------------------------------------------------------------------- factory and fitting


def test_build_none_and_unknown_kind():
    assert build_conditioner(ConditionConfig()) is None
    assert set(CONDITIONERS) == {"class", "text", "pretrained-text"}
    with pytest.raises(ConfigError, match="did you mean 'class'.*valid kinds") as err:
        build_conditioner(ConditionConfig(kind="clas"))
    assert isinstance(err.value, VideoSynthError)


def test_fit_condition_config_fills_unset_only():
    base = ConditionConfig(kind="class")
    fitted = fit_condition_config(base, [], ["a", "b", "c"])
    assert fitted.num_classes == 3 and base.num_classes == 0
    assert fit_condition_config(ConditionConfig(kind="class", num_classes=7), [], ["a"]).num_classes == 7
    text = fit_condition_config(ConditionConfig(kind="text"), CAPTIONS, [])
    assert text.vocab[:3] == ["<pad>", "<unk>", "<cls>"] and "moves" in text.vocab
    kept = ConditionConfig(kind="text", vocab=["<pad>", "<unk>", "<cls>", "x"])
    assert fit_condition_config(kept, CAPTIONS, []).vocab == kept.vocab
    with pytest.raises(ConfigError, match="no captions"):
        fit_condition_config(ConditionConfig(kind="text"), ["", ""], [])
    with pytest.raises(ConfigError, match="no class names"):
        fit_condition_config(ConditionConfig(kind="class"), [], [])
    with pytest.raises(ConfigError, match="num_classes=2 but the data have 3 classes: set it to 3"):
        fit_condition_config(ConditionConfig(kind="class", num_classes=2), [], ["a", "b", "c"])


def test_config_round_trips_through_config_module():
    from videosynth.config import from_dict, to_dict

    cfg = fit_condition_config(ConditionConfig(kind="text", dim=DIM), CAPTIONS, [])
    assert from_dict(ConditionConfig, to_dict(cfg), "condition") == cfg
