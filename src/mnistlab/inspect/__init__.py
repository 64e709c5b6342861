"""Looking at data and networks: the test error and its report (evaluate.py), pictures of the
data, the training curves and the mistakes (pictures.py), and of what a network learned:
filters, feature maps, filter maximisation (network.py).

Example:
    >>> from mnistlab import inspect
    >>> inspect.plot_filters(mnistlab.load_model("runs/cnn"), "filters.png").panels  # doctest: +SKIP
    32
"""

from mnistlab.inspect.evaluate import evaluate, format_report
from mnistlab.inspect.network import (
    Maximized,
    conv_layers,
    find_layer,
    first_convolution,
    inspected,
    layer_outputs,
    maximize_filters,
    plot_filters,
    plot_maximized,
    plot_responses,
)
from mnistlab.inspect.pictures import (
    Picture,
    evaluation_plots,
    grid_pixels,
    grid_shape,
    image_grid,
    plot_confusion,
    plot_curves,
    plot_misclassified,
    plot_samples,
)

__all__ = [
    "Maximized",
    "Picture",
    "conv_layers",
    "evaluate",
    "evaluation_plots",
    "find_layer",
    "first_convolution",
    "format_report",
    "grid_pixels",
    "grid_shape",
    "image_grid",
    "inspected",
    "layer_outputs",
    "maximize_filters",
    "plot_confusion",
    "plot_curves",
    "plot_filters",
    "plot_maximized",
    "plot_misclassified",
    "plot_responses",
    "plot_samples",
]
