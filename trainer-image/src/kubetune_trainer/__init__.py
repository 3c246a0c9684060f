"""kubetune's reference trainer: ``python -m kubetune_trainer [--name=value ...]``.

A PyTorch classifier (an MLP or a small CNN) trained on scikit-learn's bundled digits (no
download), an .npz of arrays ``x``, ``y``, or an image folder with one subfolder per class. It
reads its hyperparameters from ``KUBETUNE_PARAMS`` (a JSON object) and from flags, which win;
an unknown name or an ill-typed value is refused with exit status 2 before training starts.
After every epoch it reports ``val_loss``, ``val_accuracy``, ``train_loss``,
``epoch_seconds``, and the model's cost, ``params_count`` (trainable weights, exact) and
``latency_ms`` (the median of 9 timed forward passes over 64 validation examples, measured once
before training: a second objective to trade accuracy against, noisy by up to about a third
between runs), through ``kubetune.sdk.report(step=epoch, ...)``, then a final report;
``KUBETUNE_METRIC`` (default ``val_loss``) names the study's objective and must be one of them.

Exit status: 0 done; 2 parameters, objective or data refused (nothing trained); 4 the loss
stopped being finite (the trial fails rather than report a made-up penalty); 1 anything else.

With ``WORLD_SIZE`` above 1 (a study's ``trial.workers``, which also sets ``RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``) it trains data-parallel, one worker per pod, gloo on CPU
and nccl on CUDA; worker 0 reports (see ``distributed``).

``python -m kubetune_trainer toy <name>`` runs a toy objective instead (see ``toys``).

Hyperparameters and their defaults:

Features:
  rotation      float   default 0.0         [0, 180]
      random rotation of each training image, up to this many degrees either way
  hflip         bool    default false       true, false
      flip training images horizontally with probability 1/2
  shift         float   default 0.0         [0, 0.5]
      random shift of each training image, up to this fraction of its size
  normalize     choice  default "standard"  standard, minmax, none
      input normalisation fitted on the training split: per-channel mean/std (standard),
      per-channel min/max to [0, 1] (minmax), or none

Architecture:
  model         choice  default "mlp"       mlp, cnn
      a multilayer perceptron or a small convolutional network
  depth         int     default 2           [1, 8]
      hidden layers (mlp) or convolution blocks (cnn)
  width         int     default 128         [1, 4096]
      units per hidden layer (mlp) or channels per convolution (cnn)
  activation    choice  default "relu"      relu, gelu, tanh
      activation function
  dropout       float   default 0.0         [0, 1)
      dropout probability before each linear layer after the first
  pooling       choice  default "max"       max, avg
      2x2 pooling after each convolution block (cnn only)

Learning algorithm:
  lr            float   default 0.001       (0, inf)
      initial learning rate
  optimizer     choice  default "adam"      sgd, adam, adamw
      sgd (with momentum), adam or adamw
  momentum      float   default 0.9         [0, 1)
      momentum of sgd (ignored by adam and adamw)
  weight_decay  float   default 0.0         [0, inf)
      L2 penalty (sgd, adam) or decoupled weight decay (adamw)
  batch_size    int     default 64          [1, 65536]
      training batch size
  epochs        int     default 10          [1, 100000]
      passes over the training split
  lr_schedule   choice  default "constant"  constant, cosine, step
      constant; cosine decay to 0 over the run; or step (x0.1 at 50% and again at 75% of the
      run)

Run settings:
  seed          int     default 0           [0, 2147483647]
      seed of weights, batch order and augmentation (the validation split is fixed whatever the
      seed)
  data          str     default "digits"    text
      'digits' (scikit-learn's bundled 8x8 digits), or a path to an .npz with arrays x and y, or
      to an image folder with one subfolder per class
  val_fraction  float   default 0.2         (0, 1)
      fraction of the data held out for validation (stratified, fixed seed)
  image_size    int     default 0           [0, 4096]
      resize folder images to this square size (0: keep; sizes must then agree)
  device        choice  default "auto"      auto, cpu, cuda
      auto (cuda when present), cpu or cuda
  threads       int     default 1           [0, 1024]
      CPU threads for torch (0: every CPU the process may use); one is fastest for small models
      on shared cores. A CPU run is deterministic for a given seed and thread count
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
