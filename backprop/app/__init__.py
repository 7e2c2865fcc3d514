"""The application: what turns the library into the ``backprop`` command.

    cli.py         the ``backprop`` command (train, evaluate, predict, gradcheck, plot, bench)
    config.py      TOML configs -> model, loss, optimizer, Trainer, through the library's registries
                   (config_schema.py: the tables and types; config_build.py: the objects)
    sources.py     data sources named in configs (sklearn sets, generators, files, MNIST)
    datasets.py    MNIST / Fashion-MNIST .npz files and the IDX reader
    text.py        the ``text`` source: fortune-format folders -> TF-IDF CSR matrices
    experiment.py  one run: data -> model + trainer -> fit -> evaluation -> run directory
    plotting.py    matplotlib figures of a run (curves.py, model_figures.py,
                   prediction_figures.py by family; mpl.py sets the backend up)

The application imports the library (``backprop.layers``, ``backprop.trainer``, ...); the library
never imports the application, so ``import backprop`` to train from Python loads neither TOML
parsing nor matplotlib.
"""
