"""The parameter and attribute documentation both estimators share (numpydoc, indented for a class docstring)."""

PARAMETERS = """\
    cell : {"lstm", "gru", "elman"}, default="lstm"
        The recurrent cell ("rnn" is accepted for "elman", as ``rnnfast.RNN`` is ``rnnfast.Elman``).
    hidden_size : int, default=64 for the classifier, 128 for the regressor
        Hidden units per layer (and direction). The two defaults come from 3-fold cross-validation inside
        the training splits (benchmarks/README.md, how the defaults were chosen): 128 units gave the
        regressor a higher mean R² over three regression sets for each of three seeds, while the
        classifier's mean accuracy was mixed.
    num_layers : int, default=1
        Stacked recurrent layers.
    nonlinearity : {"tanh", "relu", "sigmoid"}, default="tanh"
        The Elman cell's activation (the LSTM and GRU have their own).
    dropout : float, default=0.0
        Dropout between stacked layers during training.
    bidirectional : bool, default=False
        Read each sequence both ways (needs ``tbptt`` None or "auto", which is None then).
    output : {"last", "sequence"}, default="last"
        "last": one target per sequence (many-to-one); "sequence": one target per step (many-to-many).
    readout : {"auto", "last", "mean", "max", "meanmax", "lastmeanmax"}, default="auto"
        What the head of ``output="last"`` reads of the top layer's states h_t, over each sequence's own
        steps (``rnnfast.Readout``): h at the last step (for a bidirectional stack, the forward half at the
        last step and the reverse half at the first), their mean, their maximum, mean and maximum side by
        side, or all three side by side ("lastmeanmax", ULMFiT's concat pooling). "auto" is
        "lastmeanmax", or "last" with ``tbptt``, which cannot backpropagate through a pool over every step.
    window : "auto", int or None, default="auto"
        Time-delay window: k consecutive steps become one step of k·n_features inputs (stride k), so
        the recurrence runs ⌈T/k⌉ steps. "auto" picks k = ⌈T_max / 32⌉ (classifier) or ⌈T_max / 16⌉
        (regressor) from the longest training sequence (1 for sequences of up to 32 or 16 steps, and
        always 1 with ``output="sequence"``); fixed at fit as ``window_``. None or 1: no window.
    window_span : "auto" or int, default="auto"
        Each step reads its own k steps (the window; k = 1 without one) and the (window_span − 1)·k steps
        before them (zeros before a sequence's first step), so consecutive steps overlap as a convolution's
        receptive fields do: window_span·k·n_features inputs a step, stride k, still ⌈T/k⌉ steps. 1: no
        overlap. "auto": 2 with ``output="last"``, 1 with ``output="sequence"``; fixed at fit as
        ``window_span_``. Chosen by 3-fold cross-validation inside the training splits, 3 seeds: with
        windows, mean accuracy over the 15 classification sets +0.002 to +0.011 and mean R² over the 3
        regression sets −0.015 to +0.026 (ArrowHead +0.03 to +0.08, PigCVP +0.04 to +0.06; PLAID −0.01 to
        −0.02); on the four sets of at most 32 steps (no window) their mean +0.002 to +0.003 (JapaneseVowels
        +0.007 to +0.011); benchmarks/README.md, how the defaults were chosen.
    window_offset : "random" or 0, default="random"
        Where a training sequence's windows start. "random": at a step φ ∈ {0 … k − 1} drawn afresh each
        time the sequence enters a batch (its first φ steps are dropped), so that the model learns from
        every alignment of the window grid, as random crops augment images; with ``max_updates`` of a
        few thousand it draws each alignment many times. 0: always the grid predict uses (windows from
        step 0). No effect without a window (k = 1).
    random_crop : "auto" or float in [0, 1), default="auto"
        With ``output="last"``, each time a training sequence enters a batch it keeps a random segment of its
        steps: ⌈u·T⌉ of them, u uniform in [1 − random_crop, 1], from a uniform start (then the window's random
        offset), as random crops augment images; predict reads whole sequences and averages draws of the crop
        (``predict_crops``). 0: no crop. "auto": 0.3 for the classifier's sequences where they get a window
        (k > 1; with ``window="auto"``, when the longest training sequence is over 32 steps), else 0 (the regressor
        never crops); fit stores the value it used in ``random_crop_``. Must be 0 or "auto" with
        ``output="sequence"``. Chosen by 3-fold cross-validation inside the training splits, 3 seeds: mean
        accuracy over 15 sets +0.012 to +0.015 (PigCVP 0.17–0.18 → 0.30–0.44, OSULeaf 0.77–0.79 → 0.81–0.85),
        with losses on PickupGestureWiimoteZ (0.78–0.82 → 0.66–0.76); a crop of the short sets too cost
        ItalyPowerDemand and UnitTest (24 steps), and the regressor's crop cost R² (benchmarks/README.md, how
        the defaults were chosen).
    predict_offsets : "all" or int, default="all"
        Where predict's windows start, with ``output="last"``. "all": the outputs are averaged over the k
        alignments of the window grid, each sequence's windows starting at step 0 … k − 1 (the classifier
        averages the probabilities), the alignments ``window_offset="random"`` trains on: k forward passes
        of ⌈T/k⌉ steps each. An integer m: the m alignments φ_i = ⌊i·k/m⌋ (i = 0 … m − 1) spread evenly
        over the window, m passes (all k when m >= k), for a predict of long sequences at a fraction of the
        cost (64 series of 2,000 steps, k = 63: 613 ms with "all", 108 ms with m = 8; benchmarks/README.md
        has the timing and the cross-validation). 0 or 1: the grid from step 0 alone, one pass. May be changed after fit
        (``set_params``). No effect without a window, or with ``window_offset=0`` (a model trained on
        the grid alone predicts on it alone). Chosen by 3-fold cross-validation inside the training
        splits (benchmarks/README.md, how the defaults were chosen): better on 4 of 13 classification
        sets with a window, worse on 1; for the regressor, with its 16-step window, a higher mean R² for
        each of three seeds.
    predict_noise : "auto" or int, default="auto"
        How many draws of the training noise predict averages over, with ``input_noise`` σ > 0: pass j adds
        σ·z_j to the prepared inputs as fit does, z_j standard normal from a fixed seed and the same for every
        sequence of the pass (so that a prediction depends on its own sequence alone, and repeats exactly), and
        the outputs are averaged (the classifier averages the probabilities). With a window, the a alignments of
        ``predict_offsets`` take the draws in turn (pass j reads alignment j mod a), each ⌈m/a⌉ times: a·⌈m/a⌉
        forward passes in all, so predict costs up to m times as much where a sequence has fewer than m
        alignments (no window: 10,000 series of 16 steps took 0.24 s with 0 and 1.9 s with 8; 1,000 series of
        100 steps, 7 alignments: 0.20 and 0.42 s). 0: none, the inputs as given. "auto": 8 for
        ``SequenceRegressor`` with ``output="last"``, else 0. May be changed after fit (``set_params``). Chosen
        by 3-fold cross-validation inside the training splits (benchmarks/README.md, how the defaults were
        chosen): the regressor's mean R² over three sets rose with the draws and flattened (0.248, 0.257, 0.265,
        0.265 for m = 0, 4, 8, 16 at random_state 0; 0.244, 0.254, 0.256, 0.259 at 1; with every alignment
        weighing the same, m = 8 gave 0.268, 0.258 and, at 2, 0.275 against 0.270); the classifier's accuracy
        was the same, so its "auto" is 0.
    predict_crops : "auto" or int, default="auto"
        How many passes predict averages over draws of the training crop, for a model that trained with
        ``random_crop_`` c > 0: pass 0 reads the whole sequences, pass j ≥ 1 reads the same part of every
        sequence, its ⌈(1 − c + c·u_j)·T⌉ steps from the fraction v_j of the room left (u_j and v_j uniform
        in [0, 1) from a fixed seed per j, so that a prediction depends on its own sequence alone, and repeats
        exactly), and the outputs are averaged. The passes take the alignments of ``predict_offsets`` in turn,
        as ``predict_noise``'s do (with both, pass j has draw j of each): a·⌈m/a⌉ passes, which costs nothing
        more where a sequence has at least m alignments (a window of k ≥ m steps), and up to m times predict's
        single pass without a window. 0: whole sequences only. "auto": 16 for ``SequenceClassifier`` with
        ``output="last"``, else 0. May be changed after fit (``set_params``). Chosen by 3-fold cross-validation
        inside the training splits (benchmarks/README.md, how the defaults were chosen): mean accuracy over the
        eleven classification sets with a window 0.833, 0.830, 0.835 with 16 draws (0.829, 0.828, 0.835 with 8)
        against 0.822, 0.815, 0.821 with none (random_state 0, 1, 2; PigCVP 0.54–0.59 → 0.64–0.67,
        PickupGestureWiimoteZ 0.70–0.74 → 0.78–0.80; the largest loss PLAID's 0.814 → 0.806 at seed 1).
    scale : bool or "standard", default=True
        Standardize each input feature (and, for the regressor, each target) with the training set's
        mean and standard deviation, learned in fit (``input_mean_``, ``input_scale_``) and applied in
        predict. With True, an input feature with heavy tails (standardized fourth moment above 20:
        counts, prices, spikes) first passes through asinh((x − median) / s), s the median of its nonzero
        deviations from the median (``input_asinh_center_``, ``input_asinh_scale_``), so that a few huge
        values do not squeeze the rest to 0. "standard": standardization alone. False: inputs as given.
    derivative : "auto" or bool, default="auto"
        Append to each step's features their first differences, x_t − x_{t−1} (0 at a sequence's first
        step), so that the network reads each step's slope beside its level (as derivative DTW does for
        nearest neighbours); ``instance_norm`` and ``scale`` then apply to both. "auto": on for
        ``output="last"``, where 3-fold cross-validation inside the training splits chose it
        (benchmarks/README.md, how the defaults were chosen: a higher mean accuracy over fifteen
        classification sets and a higher mean R² over three regression sets, for each of three seeds but
        one regression seed), off for ``output="sequence"``, where it was not measured. Fixed at fit as
        ``derivative_``.
    instance_norm : "auto" or bool, default="auto" for the classifier, False for the regressor
        Append to each sequence's features its own standardization, (x_t − mean) / std with the mean and
        standard deviation of that sequence's real steps, per feature (instance normalization; the
        "standard normal variate" of spectroscopy), so that sequences recorded at gains or offsets that
        differ by orders of magnitude can be told apart by their shape; the network reads both, then
        ``scale`` applies. Computed in predict from each sequence itself. "auto": when the training
        sequences do not share a scale (among those of 10 or more steps, some feature's per-sequence
        standard deviations span more than 10× from their 10th to their 90th percentile, or its
        per-sequence means spread more than its median per-sequence deviation), and never with
        ``output="sequence"``, whose steps must not read the steps after them. Fixed at fit as
        ``instance_norm_``.
    input_noise : float, default=0.3
        Standard deviation of Gaussian noise added to the network's inputs (after scaling and the window)
        in every training batch, a fresh draw each time: jitter that keeps small training sets from being
        memorised. 0 turns it off; predict adds it only in the draws of ``predict_noise``. The kernels draw
        it (a ziggurat on xoshiro256++ streams, the same numbers for every thread count) from a seed that
        ``random_state`` fixes.
    mixup : "auto" or float, default="auto"
        α of mixup (Zhang et al., 2018), with ``output="last"``; 0 turns it off. Each training batch draws
        λ ~ Beta(α, α) and pairs every sequence b with another, π(b), of the same batch at random: the
        network reads λ·x_b + (1 − λ)·x_π(b) (after the noise; running to the longer sequence's end) and
        its loss is λ·L(y_b) + (1 − λ)·L(y_π(b)) (the classifier's: cross-entropy against the soft target
        λ·e_{y_b} + (1 − λ)·e_{y_π(b)}; the regressor's has the gradient of the squared error against
        λ·y_b + (1 − λ)·y_π(b)), each label's term weighted by its own sequence's sample weight. "auto":
        0.2 for ``SequenceClassifier``, 0 for ``SequenceRegressor`` and with ``output="sequence"``; chosen
        by 3-fold cross-validation inside the training splits of the benchmark's sets (benchmarks/README.md,
        how the defaults were chosen): mean accuracy over fifteen classification sets 0.864, 0.859, 0.863
        with α = 0.2 against 0.852, 0.848, 0.853 without (random_state 0, 1, 2), mean R² over three
        regression sets lower (0.246, 0.225, 0.230 against 0.268, 0.258, 0.275).
    optimizer : {"adam", "adamw", "sgd", "rmsprop"}, default="adam"
        The update rule ("sgd" with momentum 0.9, as scikit-learn's MLP), with ``lr`` and ``weight_decay``.
    lr : float, default=0.003
        The initial learning rate.
    lr_schedule : {"cosine", "constant"}, default="cosine"
        "cosine" anneals the learning rate from ``lr`` to 0 along half a cosine over the planned
        updates (``rnnfast.CosineAnnealingLR``); ``partial_fit`` always uses the constant ``lr`` (scaled
        for its batch as ``batch_size="auto"`` says).
    weight_decay : float, default=0.0
        L2 penalty (decoupled for "adamw").
    batch_size : "auto" or int, default="auto"
        The largest mini-batch: an epoch splits the shuffled training set into ⌈n / batch_size⌉
        batches of equal size (± 1), so no small remainder makes an update of its own; the gradient is
        the batch's mean. "auto" (as MLP's, resolved from each call's training set): the smallest of 16,
        32, 64 and 128 that keeps an epoch to 1000 batches, so 16 up to 16,000 sequences and 128 from
        64,001, where larger batches cost less per sequence (``batch_size_``); above 16, with an adaptive
        optimizer ("adam", "adamw", "rmsprop"), the fit (and each ``partial_fit`` call, by its own batch)
        scales ``lr`` by √(batch / 16), the square-root rule for them, so ``lr`` is the rate at 16.
    bucket : bool, default=True
        For sequences of unequal lengths, batch those of similar length together, so that a ragged set
        trains at about the cost of its real steps: each epoch's shuffled order is cut into pools of
        32 batches, each pool is sorted by length (ties in their shuffled order), cut into batches, and
        the batches are shuffled. Equal-length data is unaffected.
    max_updates : "auto", int or None, default="auto"
        The training budget in updates (optimizer steps): fit trains ⌈max_updates / updates per epoch⌉
        whole epochs (at least one), so a small training set gets as many updates as a large one. An epoch
        makes one update per mini-batch (none for a batch whose weights are all 0); with ``tbptt``, one per
        chunk of ``tbptt`` steps that scores (``output="sequence"``: every chunk to the batch's longest
        sequence's end; ``"last"``: each chunk where one of its sequences ends), counted for the plan on one
        draw of an epoch's batches. "auto":
        2000 updates, or 10 epochs where that is more (training sets of over 3,200 sequences at
        ``batch_size=16``), so that a large set is not cut to an epoch or two, but no more epochs (at
        least one) than 2.5·10¹¹ multiply-adds of the recurrent layers' forward pass allow, counted over
        each epoch's real (windowed) steps, gates·hidden_size·(inputs + hidden_size) a step and layer, inputs
        counting the window's (whole sequences: a random crop makes the real work smaller): 15–35 s on 2
        cores, by shape. On up to 3,200 sequences (2000 batches of 16) it binds where one sequence's
        forward costs over 7.8·10⁶ multiply-adds: for the classifier's LSTM 64 over the window's 32 steps,
        over about 900 inputs a step (the window's k steps of each feature, twice for its span and twice
        for first differences: long series of a dozen features or more). It also shortens large sets (3
        epochs of 100,000 series of 30 steps of 3 features) and long per-step targets. None:
        ``max_epochs`` alone sets the budget.
    max_epochs : int or None, default=None
        An upper limit on the epochs (passes over the training set); None: no limit beyond the budget.
    clip_norm : float or None, default=1.0
        Clip each update's gradient to this total 2-norm (None: no clipping).
    tbptt : "auto", int or None, default="auto"
        Truncated BPTT: one update every ``tbptt`` steps of a batch, the state carried across (None:
        full BPTT through each whole sequence). Needs ``readout="last"`` with ``output="last"``, and a
        unidirectional layer. "auto": with ``output="sequence"`` (unidirectional), the longest training
        sequence cut into ⌈T/128⌉ chunks of equal length, so that long per-step targets get many updates
        for their work (``tbptt_``); None with ``output="last"`` (its readout pools over every step) and
        for a bidirectional layer. A target that sums over a whole long sequence learns better through
        whole sequences (``tbptt=None``, with a larger ``max_updates``; benchmarks/long_sequences.py).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training set and stop when its loss has not improved by
        ``tol`` for ``n_iter_no_change`` epochs, keeping the best epoch's weights. Without a validation
        fraction (None or 0) the training loss is watched instead.
    validation_fraction : float or None, default=0.1
        The held-out share, with ``early_stopping``.
    n_iter_no_change : int or None, default=10
        Epochs without improvement before early stopping stops; an epoch of fewer than 20 updates counts
        as that fraction of one, so small training sets are not stopped after a handful of updates.
    tol : float, default=1e-4
        The improvement of the monitored loss that resets the patience.
    warm_start : bool, default=False
        Continue from the fitted model (weights, scaling, window, optimizer state) instead of starting
        over; the learning-rate schedule restarts over the new call's budget. The parameters the model is
        built from (cell, sizes, readout, output, dtype, a window set by hand) must be as they were, else
        ValueError; an unpickled, deep-copied or loaded model continues with a new optimizer state, and
        its dropout masks and shuffling drawn afresh from ``random_state`` (the same for two loads of one
        model). A call that fails, or is interrupted before its first epoch is complete, leaves the estimator
        as it was (its random streams included).
    random_state : None, int, numpy Generator or RandomState, default=None
        Seeds the weights, dropout, shuffling and the validation split (None: fresh each fit). The same
        seed gives the same model bit for bit on the same thread count.
    n_threads : int or None, default=None
        Kernel threads during fit and predict (None: ``rnnfast.get_num_threads()``). With the regressor's
        ``network_weight="auto"``, fit shares the n threads between the model's training and its three probe
        fits: min(4, n) fits at a time (the probes in Python threads of their own), each on n // min(4, n)
        kernel threads (a small training set gains little from a second kernel thread, about half of its
        time being Python). Where the probes run, 1 and 2 threads so give the same model from the same seed.
    verbose : int, default=0
        1 shows progress on stderr: first the plan (epochs, batches, the learning rate, the truncation,
        and whether the work limit of ``max_updates="auto"`` shortened it), then a tqdm bar when tqdm is
        installed, else about ten lines.
    dtype : {"float32", "float64"}, default="float32"
        The precision of the weights and of training.
    comm : None, "auto" or a communicator, default=None
        Data-parallel training over MPI ranks (see ``rnnfast.distributed``)."""

ATTRIBUTES = """\
    n_features_in_ : int
        Features per step (for a 2-D X: its number of columns, T).
    feature_names_in_ : ndarray of str (n_features_in_,), object dtype
        The column names of X at fit, defined only when X was a DataFrame whose column names are all
        strings. Predicting on X with other names raises a ValueError; on X with names where fit had none,
        or without names where fit had them, warns (scikit-learn's convention).
    input_size_ : int
        Features per step as the data gives them (before the window).
    window_ : int
        The time-delay window the model reads with (1: none).
    window_span_ : int
        The windows each step reads, its own and those before it (``window_span``, "auto" resolved).
    derivative_ : bool
        Whether each feature's first difference is appended to the features (``derivative``).
    instance_norm_ : bool
        Whether each sequence's own standardization is appended to its features (``instance_norm``).
    random_crop_ : float
        The crop the last fit (or ``partial_fit``) trained with: ``random_crop``, with "auto" resolved.
    input_noise_, window_offset_ : float, 0 or "random"
        The ``input_noise`` and ``window_offset`` the last fit (or ``partial_fit``) trained with, which
        predict's draws of the noise (``predict_noise``) and its alignments (``predict_offsets``) follow:
        changing the parameters after fit changes nothing until the next fit.
    input_asinh_center_, input_asinh_scale_ : ndarray (F,) or None
        The asinh compression of the heavy-tailed input features (``scale``), applied before the
        standardization; a scale of 0 leaves a feature as it is. None when no feature is compressed.
        F, here and below, counts the features the network reads before the window: input_size_, doubled
        with ``derivative_`` (the features as given, then their differences) and doubled again with
        ``instance_norm_`` (those, then their per-sequence standardization).
    input_mean_, input_scale_ : ndarray (F,) or None
        The inputs' standardization (None with ``scale=False``).
    model_ : rnnfast.Sequential
        The network: ``Sequential(rnn_, Readout(readout), head_)`` (``Readout("sequence")`` with
        ``output="sequence"``), trained through ``rnnfast``'s training engine; predict applies the head's
        affine map in float64.
    rnn_ : rnnfast.LSTM, rnnfast.GRU or rnnfast.Elman
        The recurrent stack, ``model_[0]``.
    head_ : rnnfast.Linear
        The output layer, ``model_[2]``.
    loss_curve_ : list of float
        The mean training loss of each epoch.
    best_loss_ : float or None
        The lowest training loss (None with a validation set, as scikit-learn's MLP).
    validation_scores_ : list of float or None
        The validation score (accuracy or R²) of each epoch trained with ``early_stopping`` (a warm start
        after a fit without it adds its epochs' scores to none; ``partial_fit`` epochs add none).
    best_validation_score_ : float or None
        The score of the epoch whose weights were kept, when this fit chose them by validation.
    n_iter_, n_epochs_ : int
        Epochs trained.
    n_updates_ : int
        Updates made (optimizer steps: one per mini-batch that scores, or with ``tbptt`` one per chunk that
        scores; see ``max_updates``).
    t_ : int
        Training sequences seen (counted once per epoch).
    batch_size_ : int
        The largest mini-batch of the last fit or partial_fit call (``batch_size``, "auto" resolved).
    tbptt_ : int or None
        The truncation of the last fit or partial_fit call (``tbptt``, "auto" resolved; None: whole
        sequences).
    history_ : dict
        {"loss": loss_curve_, and with a validation set "val_loss", "val_score"} per epoch.
    best_epoch_ : int
        With early stopping: the epoch (from 1) whose weights were kept."""

# SequenceRegressor's own (the classifier has no linear part)
RIDGE_PARAMETER = """\
    ridge : "auto" or bool, default="auto"
        A linear part, fitted first: ridge regression (its α by leave-one-out error, in closed form, from a
        grid relative to the features' size) of the targets on each sequence's last q steps of inputs
        (scaled with ``scale``), aligned at its end (q = the longest training sequence, at most 256 inputs
        in all; none where a step has more than 256 features), whose residuals the network then learns;
        predict adds the two. It gives the network's sum what a linear model reads at once (a value at a fixed place
        before the end, a weighted sum of the last steps: the next value of a series) and that a recurrent
        network trained with the jitters above learns slowly or blurs. True: always; False: none, the
        network alone. "auto": kept where its leave-one-out R² on the training sequences (the mean over
        outputs) is above 0, i.e. where it predicts left-out sequences better than their mean
        (``ridge_score_``), and never with ``output="sequence"``; chosen by 3-fold
        cross-validation inside the training splits (benchmarks/README.md, how the defaults were chosen).
        Fitted on the sequences that train (not the validation split of ``early_stopping``) at the first fit,
        then fixed: ``partial_fit`` and ``warm_start`` keep it (so a stream's first batch decides it)."""

RIDGE_ATTRIBUTES = """\
    ridge_ : bool
        Whether the model has the linear part (``ridge``).
    ridge_coef_, ridge_intercept_ : ndarray (ridge_steps_ · input_size_, n_outputs_) and (n_outputs_,), or None
        The linear part, on the flattened last ``ridge_steps_`` steps of the inputs as the network reads them
        (scaled with ``scale``; the earliest step first), in the targets' units as the network learns them
        (standardized with ``scale``); None without it.
    ridge_alpha_, ridge_score_ : float or None
        The ridge's penalty and its leave-one-out R² on the training sequences (set whenever ``ridge`` was
        not False and the output is "last", also where "auto" then left the part out).
    ridge_steps_ : int or None
        q, the steps at each sequence's end that the linear part reads.
    ridge_residual_scale_ : ndarray (n_outputs_,) or None
        The standard deviation of the ridge's residuals on the training sequences, the unit the network
        learns them in."""

NETWORK_WEIGHT_PARAMETER = """\
    network_weight : "auto" or float in [0, 1], default="auto"
        How much of the network's part predict adds, with ``output="last"``: predict = b + w·(network's
        part), b the linear part (``ridge``) or, without one, the training targets' mean; 1 the network as
        trained, 0 the linear part (or the mean) alone. "auto": w per output from three probe fits after the
        model's own (3-fold cross-fitting), each the same estimator with the model's linear part (``ridge_``)
        trained on the training sequences but a contiguous third (in the order given, as scikit-learn's
        unshuffled ``KFold``), which it predicts: over those out-of-fold
        predictions, w = clip(Σ ω·r·d / Σ ω·d², 0, 1) (r = y − b, d = ŷ − b, ω the sample weights), the
        least-squares weight of the network's part on sequences it did not train on. So a network that fits
        noise (the training set's R² near 1, the held-out R² below the linear part's) is shrunk toward b, and
        one that generalises is kept. The probes cost three fits more: on one thread a fit takes four times
        as long; with n threads the model's training and the probes run min(4, n) at a time, each on
        n // min(4, n) kernel threads (see ``n_threads``): at 2 threads about three times as long. They run in
        ``fit`` with ``output="last"``, at least 6 sequences, no ``comm``, and where four times the fit's work
        stays within the work limit of ``max_updates="auto"`` (else w is 1, and a fit at that limit takes as
        long as before). ``partial_fit`` gives 1, ``warm_start``
        keeps the weight of the first fit, and a float is used as given. The thirds are contiguous so that
        windows cut from one series in time order are predicted from other stretches of it, not from
        neighbours that share most of their steps (which made w too high); for data in an order that sorts
        the targets, the probes extrapolate and w comes out low, toward b. With ``output="sequence"`` only
        "auto" or 1. Chosen by 3-fold cross-validation inside the training splits of 12 regression sets
        (benchmarks/README.md, how the defaults were chosen)."""

NETWORK_WEIGHT_ATTRIBUTES = """\
    network_weight_ : ndarray (n_outputs_,)
        w, the weight of the network's part in predict (``network_weight``, with "auto" resolved).
    target_center_ : ndarray (n_outputs_,)
        The training targets' (weighted) mean in the units the network learns them (0 with ``scale``): b
        without the linear part."""
