"""cs231n_utils: the code behind the CS231n Lecture 7 book ("Training Neural Networks II").

Modules, one job each (see DESIGN.md):

- ``optim``: reference NumPy update rules, ``next_w, config = rule(w, dw, config)``
- ``gradcheck``: numerical gradients and ``rel_error``
- ``landscapes``: test functions with gradients and Hessians, ``run_trajectory``
- ``validation``: the input checks every public function uses
"""
__version__ = "0.1.0"
