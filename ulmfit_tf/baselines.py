"""The classic baseline a user tries first: TF-IDF n-grams + logistic regression.

scikit-learn is an optional dependency (``pip install "ulmfit-tf[baselines]"``).
"""

import numpy as np

# Inverse regularisation strengths tried; the best on the validation split wins.
DEFAULT_CS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError("The TF-IDF baseline needs scikit-learn: "
                          'pip install "ulmfit-tf[baselines]"') from None


def tfidf_logistic_regression(train_texts, train_labels, valid_texts, valid_labels,
                              cs=DEFAULT_CS, ngram_range=(1, 2), min_df=1):
    """Fits TF-IDF (word 1-2 grams, sublinear tf) + logistic regression for
    each C in `cs` on the training texts and keeps the one with the lowest
    validation error (ties: the smaller C).

    Returns:
        (fitted scikit-learn pipeline, {"C": chosen, "valid_errors": {C: error}}).
    """
    _sklearn()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    for name, texts, labels in (("train", train_texts, train_labels),
                                ("valid", valid_texts, valid_labels)):
        if len(texts) != len(labels):
            raise ValueError(f"`{name}_texts` and `{name}_labels` must have the same length. "
                             f"Received: {len(texts)} and {len(labels)}")
        if not len(texts):
            raise ValueError(f"`{name}_texts` is empty.")
    if not cs:
        raise ValueError(f"`cs` must name at least one C. Received: {cs!r}")
    vectorizer = TfidfVectorizer(ngram_range=tuple(ngram_range), min_df=min_df,
                                 sublinear_tf=True)
    features = vectorizer.fit_transform(train_texts)
    valid_features = vectorizer.transform(valid_texts)
    errors, models = {}, {}
    for c in cs:
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(features, train_labels)
        errors[c] = float(np.mean(model.predict(valid_features) != np.asarray(valid_labels)))
        models[c] = model
    best = min(cs, key=lambda c: (errors[c], c))
    return make_pipeline(vectorizer, models[best]), {"C": best, "valid_errors": errors}


def predict_probabilities(pipeline, texts, num_classes):
    """Class probabilities in the classes' id order (columns of classes that
    the training labels lacked are zero)."""
    probabilities = np.zeros((len(texts), num_classes))
    probabilities[:, pipeline.classes_] = pipeline.predict_proba(texts)
    return probabilities
