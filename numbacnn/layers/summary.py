"""The table that ``model.summary(input_shape)`` returns."""


def _human(n):
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


class Summary:
    """Rows of (layer, type, output shape, params, FLOPs); ``str()`` gives the table."""

    def __init__(self, rows, input_shape, output_shape, total_params):
        self.rows = rows
        self.input_shape = input_shape
        self.output_shape = output_shape
        self.total_params = total_params
        self.total_flops = sum(r[4] for r in rows)

    def as_dicts(self):
        return [
            {"layer": name, "type": kind, "output_shape": list(shape), "params": params, "flops": flops}
            for name, kind, shape, params, flops in self.rows
        ]

    def __str__(self):
        header = ("layer", "type", "output shape", "params", "FLOPs")
        body = [
            (name, kind, "x".join(str(s) for s in shape), f"{params:,}", _human(flops))
            for name, kind, shape, params, flops in self.rows
        ]
        widths = [max(len(str(r[i])) for r in [header] + body) for i in range(5)]
        line = "  ".join("-" * w for w in widths)

        def fmt(r):
            return "  ".join(str(v).ljust(w) if i < 3 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))

        out = [f"input {'x'.join(str(s) for s in self.input_shape)}", fmt(header), line]
        out += [fmt(r) for r in body]
        out += [
            line,
            f"total params: {self.total_params:,}    forward FLOPs: "
            f"{_human(self.total_flops)} (a multiply-add counts 2)",
        ]
        return "\n".join(out)

    __repr__ = __str__
