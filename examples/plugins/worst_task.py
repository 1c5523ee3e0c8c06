"""A metric plugin: the accuracy of the task left worst off when training ends.

    retain run --plugin examples/plugins/worst_task.py --strategy naive --strategy er
    retain report --plugin examples/plugins/worst_task.py retain-results/retain.db --format csv --out -
"""

from retain.metrics.registry import register_metric


@register_metric("worst_task", label="worst task", higher_is_better=True,
                 description="the lowest accuracy of any task after the last one")
def worst_task(R, baseline):
    """``R[i][j]``: accuracy on task j after training task i; the last row is the final model's."""
    return min(R[-1])
