"""One CMC training step on one rank (the trainer and the equivalence check run this same function):
both views' encoders forward in train mode on this rank's images, scores against the memory bank for this
rank's rows of the global batch, NCE or softmax loss, backward (DDP averages the gradients), SGD, then the
bank update with every rank's indices and embeddings."""
from .nce import contrast_step, update_bank


def lr_at(base, epoch, decay_epochs, rate):
    """Upstream's step schedule (train/optim/schedule.ts stepLr): base * rate ** #{d in decay_epochs: epoch > d}."""
    return base * rate ** sum(1 for d in decay_epochs if epoch > d)


def train_step(model, bank, optimizer, x_local, y_local, y_global, counts, rank, idx_global=None):
    feats = model(x_local)
    l, ab = feats[0], feats[1]
    loss, stats, _, _ = contrast_step(bank, l, ab, y_global, counts, rank, idx_global)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    update_bank(bank, l, ab, y_local, counts)
    loss_l, loss_ab, prob_l, prob_ab = stats
    return {'loss': loss_l + loss_ab, 'loss_l': loss_l, 'loss_ab': loss_ab, 'prob_l': prob_l, 'prob_ab': prob_ab}
