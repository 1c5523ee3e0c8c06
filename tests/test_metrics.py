import numpy as np
import pytest

from retain.metrics import matrix as metrics

# Hand-computed example: 3 tasks.
R = [[0.9, 0.1, 0.2],
     [0.6, 0.8, 0.1],
     [0.5, 0.7, 0.9]]
B = [0.1, 0.1, 0.1]


def test_average_accuracy_and_curve():
    assert metrics.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    assert metrics.average_accuracy_curve(R) == pytest.approx([0.9, 0.7, 0.7])


def test_forgetting_chaudhry():
    # task 0: max(0.9, 0.6) - 0.5 = 0.4; task 1: max(0.8) - 0.7 = 0.1
    assert metrics.forgetting_per_task(R) == pytest.approx([0.4, 0.1])
    assert metrics.forgetting(R) == pytest.approx(0.25)


def test_forgetting_can_be_negative_and_is_zero_for_one_task():
    assert metrics.forgetting([[0.5, 0.0], [0.7, 0.9]]) == pytest.approx(-0.2)
    assert metrics.forgetting([[0.7]]) == 0.0


def test_bwt_fwt_learning_accuracy():
    assert metrics.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    assert metrics.forward_transfer(R, B) == pytest.approx(((0.1 - 0.1) + (0.1 - 0.1)) / 2)
    assert metrics.forward_transfer([[0.9, 0.5], [0.9, 0.9]], [0.1, 0.1]) == pytest.approx(0.4)
    assert metrics.learning_accuracy(R) == pytest.approx((0.9 + 0.8 + 0.9) / 3)


def test_inputs_not_modified_and_bad_shapes_refused():
    r = [list(row) for row in R]
    metrics.summarize(r, B)
    assert r == R
    with pytest.raises(ValueError, match="square"):
        metrics.average_accuracy([[0.1, 0.2]])
    with pytest.raises(ValueError, match="baseline"):
        metrics.forward_transfer(R, [0.1])


def test_confidence_interval():
    mean, half = metrics.confidence_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))
    assert metrics.confidence_interval([1.0]) == (1.0, 0.0)


def test_t_quantile_matches_scipy_without_importing_it():
    from scipy import stats

    from retain.metrics.matrix import t_quantile

    for df in (1, 2, 3, 4, 9, 29, 30, 101, 1000):
        for level in (0.5, 0.9, 0.95, 0.99):
            assert t_quantile(level, df) == pytest.approx(stats.t.ppf(0.5 + level / 2, df), rel=1e-9)
    assert t_quantile(0.95, 2) == pytest.approx(4.302652729911275)
