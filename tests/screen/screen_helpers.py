"""Helpers shared by the screening tests."""
import csv
import datetime as dt

from assess import idnumber

AS_OF = dt.date(2026, 1, 15)


def person_id(birth="19500102", seq="011", region="110105"):
    body = region + birth + seq
    return body + idnumber.check_char(body)


def good_row(ins, n=0, **over):
    """One complete, valid row keyed by id: all items at maximum except one point per n."""
    row = {"A.2.8": person_id(seq=f"{(2 * n + 1) % 1000:03d}"), "A.2.1": "张三", "A.2.3": "1950-01-02", "A.2.2": "男",
           "region": "110105"}
    for it in ins.items:
        row[it.id] = str(it.max_points)
    row.update({"A.5.11": "0", "A.4.1": "", "A.2.14.1": "0", "A.2.14.2": "0", "A.2.14.3": "0",
                "A.2.14.4": "0", "A.2.14.5": "0"})
    row.update(over)
    return row


def write_rows(path, rows):
    """A UTF-8 CSV file with one column per key of the rows (ids as the header), as given."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path
