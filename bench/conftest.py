"""Benchmarks print their own summary of rates and ratios measured in the same run."""


def pytest_terminal_summary(terminalreporter):
    import sys
    for name, module in list(sys.modules.items()):
        lines = getattr(module, "pytest_terminal_summary_lines", None)
        if callable(lines) and getattr(module, "__file__", "") and "/bench/" in module.__file__:
            for line in lines():
                terminalreporter.write_line(line)
