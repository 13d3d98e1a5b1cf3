"""cs231n_utils: the code behind the CS231n Lecture 7 book ("Training Neural Networks II").

One job per module (see DESIGN.md):

- ``optim``: reference NumPy update rules, ``next_w, config = rule(w, dw, config)``
- ``torch_optim``: PyTorch optimizers (SGD, Adagrad, RMSprop, Adam, AdamW) matching ``optim``, any device
- ``tensor_blocks``: cache-sized blocks and reused scratch for the ``torch._foreach_*`` update paths
- ``schedules``: learning-rate schedules (step, exponential, 1/t, cosine, warm-up) for both kinds of rule
- ``second_order``: Newton, BFGS and L-BFGS (two-loop recursion, strong-Wolfe line search); ``torch_lbfgs``
- ``layers``: affine, ReLU, softmax loss and inverted dropout (CS231n forward/backward API)
- ``networks``: a NumPy ``FullyConnectedNet`` with L2 and dropout
- ``solver``: the CS231n-style ``Solver`` training loop for NumPy models
- ``regularization``: L2 penalty, augmentation (NumPy and torch), ensembles, Polyak/EMA averaging
- ``training``: a small seeded torch training loop
- ``transfer``: freeze / unfreeze, replace the head, discriminative learning rates, the transfer experiment
- ``data``: scikit-learn's digits and a local CIFAR-10 loader (no downloads)
- ``landscapes``: test functions with gradients and Hessians, ``run_trajectory``
- ``plotting``: trajectories, loss curves, animations for the chapters
- ``gradcheck``: numerical gradients and ``rel_error``
- ``autograde``: the checks behind hidden tests (credit per property, named mistakes, refusal of reference calls), trusted side
- ``kernel``: the only grading code inside a student's kernel: ``grade`` and the data-only channel to the trusted checker
- ``models``: the networks the exercises provide (``DigitsCNN``)
- ``line_search``: strong-Wolfe and backtracking line searches (used by ``second_order``)
- ``validation``: the input checks every public function uses
"""
__version__ = "0.1.0"
