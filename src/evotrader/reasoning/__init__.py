"""Reasoning components of the autonomous agent: the Weather Forecaster and the Chartist.

``make_classifier("hmm").fit(train_returns).predict_proba(windows)`` gives regime probabilities
over REGIME_LABELS; ``make_recognizer("cnn").predict(paths)`` gives chart patterns over PATTERNS.
Both take batches (batch, window), use only what they are given, and are pluggable by name.
"""

from evotrader.reasoning.chart_patterns import (
    PATTERNS,
    PatternConfig,
    generate_patterns,
    normalise_paths,
)
from evotrader.reasoning.market_classifier import (
    CLASSIFIERS,
    REGIME_LABELS,
    ClassifierReport,
    HMMClassifier,
    HMMConfig,
    RegimeClassifier,
    RuleClassifier,
    RuleConfig,
    available_classifiers,
    classifier_from_state,
    evaluate_classifier,
    make_classifier,
)
from evotrader.reasoning.pattern_recognizer import (
    RECOGNIZERS,
    Chartist,
    ChartistConfig,
    PatternRecognizer,
    PatternReport,
    TemplateConfig,
    TemplateMatcher,
    available_recognizers,
    chartist_cache_dir,
    evaluate_chartist,
    make_recognizer,
    train_chartist,
)

__all__ = [
    "CLASSIFIERS",
    "PATTERNS",
    "RECOGNIZERS",
    "REGIME_LABELS",
    "Chartist",
    "ChartistConfig",
    "ClassifierReport",
    "HMMClassifier",
    "HMMConfig",
    "PatternConfig",
    "PatternRecognizer",
    "PatternReport",
    "RegimeClassifier",
    "RuleClassifier",
    "RuleConfig",
    "TemplateConfig",
    "TemplateMatcher",
    "available_classifiers",
    "available_recognizers",
    "chartist_cache_dir",
    "classifier_from_state",
    "evaluate_chartist",
    "evaluate_classifier",
    "generate_patterns",
    "make_classifier",
    "make_recognizer",
    "normalise_paths",
    "train_chartist",
]
