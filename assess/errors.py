"""The catalogue of stable error codes, and the exceptions that carry them.

Every problem the engine reports has a code from :class:`Code`. A code is never reused or renamed:
callers, reject files and other departments' systems match on it. Messages start with where the
problem is and end with what to do about it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class CodeCatalogue:
    """Mixin of every code enum (here, the store's, the web's): members are (title, message template)."""

    @property
    def title(self) -> str:
        return self.value[0]

    def format(self, **kw) -> str:
        return self.value[1].format(**kw)


class Code(CodeCatalogue, enum.Enum):
    """Stable error codes: (title, message template)."""

    # Instrument definitions
    INSTR_001 = ("definition does not match the schema", "{where}: {detail}. Fix the definition file.")
    INSTR_002 = ("duplicate id", "{where}: id {id!r} is used more than once. Give each one a unique id.")
    INSTR_003 = ("unknown reference", "{where}: {kind} {id!r} is not defined. Allowed: {allowed}.")
    INSTR_004 = ("bands do not cover the score range",
                 "{where}: {detail}. Bands must be contiguous, must not overlap and must cover {lo}–{hi}.")
    INSTR_005 = ("setting default not allowed", "{where}: default {value!r} is not one of {allowed}.")
    INSTR_006 = ("unknown instrument", "instrument {id!r}{version} is not installed. Installed: {allowed}.")
    INSTR_007 = ("definition file cannot be read", "{where}: {detail}. Fix the file's YAML syntax.")
    INSTR_008 = ("band outside the reachable range",
                 "{where}: {detail}. Every band must be reachable within {lo}–{hi}.")
    # Answers (responses)
    RESP_001 = ("unknown item", "{where}: {item!r} is not an item or field of this instrument. "
                                "Remove it or check its id; known ids start {allowed}.")
    RESP_002 = ("code not allowed", "{where}, {item} {label}: code {value!r} is not allowed. Allowed: {allowed}.")
    RESP_003 = ("required item missing", "{where}, {item} {label}: no answer. Answer it with one of {allowed}.")
    RESP_004 = ("inconsistent answers", "{where}: {detail}")
    RESP_005 = ("malformed value", "{where}, {item} {label}: {value!r} is not {expected}. Give {expected}.")
    # Settings
    SET_001 = ("unknown setting", "{where}: setting {name!r} does not exist. Settings: {allowed}.")
    SET_002 = ("setting value not allowed", "{where}: setting {name!r} cannot be {value!r}. Allowed: {allowed}.")
    SET_003 = ("setting required", "{where}: setting {name!r} has no default and must be given before scoring "
                                   "(no safe value is established: {basis}). Allowed: {allowed}.")
    SET_004 = ("grading table invalid", "{where}: {detail}. Fix the table file (format: assess/grading_table.py).")
    # Screening files, one row each (assess screen). Messages are Chinese first: screening offices read them.
    ROW_001 = ("identity number malformed",
               "{where}，{column}：公民身份号码 {value} 不符合 GB 11643（{detail}）。请按证件填写18位号码（末位为数字或X）。")
    ROW_002 = ("identity number check character wrong",
               "{where}，{column}：公民身份号码 {value} 校验码错误（应为 {expected}）。请核对证件后重新填写。")
    ROW_003 = ("identity number birth date invalid",
               "{where}，{column}：公民身份号码 {value} 的出生日期码无效（{detail}）。请核对证件后重新填写。")
    ROW_004 = ("text column stored as a number",
               "{where}，{column}：单元格以数字形式存储（{value}），原始数字可能已丢失。请将该列设为文本格式后重新录入。")
    ROW_005 = ("birth date disagrees with identity number",
               "{where}，{column}：出生日期 {value} 与公民身份号码中的出生日期 {expected} 不一致。请核对后重新填写。")
    ROW_006 = ("sex disagrees with identity number",
               "{where}，{column}：性别 {value} 与公民身份号码顺序码所示性别（{expected}）不一致。请核对后重新填写。")
    ROW_007 = ("younger than 60",
               "{where}，{column}：评估日 {as_of} 时年龄 {age} 岁，不满60周岁，不属于老年人能力评估对象。请核对出生日期或评估对象。")
    ROW_008 = ("same person twice in one file",
               "{where}，{column}：同一公民身份号码 {value} 已在第 {first_line} 行出现。请删除重复记录或核对号码。")
    ROW_009 = ("non-numeric answer",
               "{where}，{column}（{item} {label}）：{value!r} 不是数字代码。允许：{allowed}。")
    ROW_010 = ("region code not 6 digits",
               "{where}，{column}：行政区划代码 {value!r} 不是6位数字（GB/T 2260）。请填写6位区划代码，勿补零或截断。")
    ROW_011 = ("legacy 15-digit identity number",
               "{where}，{column}：公民身份号码 {value} 为15位旧号码（GB 11643-1989），不自动升位。请填写现行18位号码。")
    ROW_012 = ("identity number missing",
               "{where}，{column}：公民身份号码为空。请填写18位公民身份号码。")
    ROW_013 = ("birth date malformed",
               "{where}，{column}：出生日期 {value!r} 不是有效日期。请按 YYYY-MM-DD 填写。")
    ROW_014 = ("sex not recognised",
               "{where}，{column}：性别 {value!r} 无法识别。请填写 男/女（或 GB/T 2261.1 代码 1/2）。")
    ROW_015 = ("wrong number of cells",
               "{where}：该行有 {actual} 个单元格，表头有 {expected} 个。请检查分隔符和引号。")
    ROW_016 = ("empty row", "{where}：空行，没有任何答案。请删除该行或补全记录。")
    ROW_017 = ("bytes not in the file's encoding",
               "{where}，{column}：含有不能按 {encoding} 解码的字节（{value}）。请修正该行，或用 --encoding 指定文件的编码。")
    # Screening files as a whole
    FILE_001 = ("input file cannot be read",
                "{where}：无法读取（{detail}）。支持 .csv（UTF-8 或 GB18030）、.xlsx、.parquet。")
    FILE_002 = ("required columns missing",
                "{where}：缺少必需的列 {missing}。请按条目编号（如 B.1.1）或中文名称（如 进食）命名列，或用 --map 指定对应关系。")
    FILE_003 = ("column mapping invalid", "{where}：列对应关系有误（{detail}）。请修改表头或 --map 文件。")
    FILE_004 = ("output cannot be written", "{where}：无法写出（{detail}）。输出支持 .parquet 和 .csv。")


@dataclass(frozen=True)
class Problem:
    """One located problem: a code, a message and where it is."""

    code: Code
    message: str
    where: str = ""
    item: str | None = None
    line: int | None = None

    def to_dict(self) -> dict:
        out = {"code": self.code.name, "title": self.code.title, "message": self.message}
        if self.item is not None:
            out["item"] = self.item
        if self.line is not None:
            out["line"] = self.line
        return out


def problem(code: Code, *, where: str = "", item: str | None = None, line: int | None = None, **kw) -> Problem:
    return Problem(code, code.format(where=where, item=item, **kw), where, item, line)


class AssessError(Exception):
    """Base of every error the engine raises on purpose. Carries one or more problems."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(p.message for p in self.problems))

    @property
    def code(self) -> Code:
        return self.problems[0].code

    def to_dict(self) -> dict:
        return {"error": self.code.name, "problems": [p.to_dict() for p in self.problems]}


class InstrumentError(AssessError, ValueError):
    """A definition file is broken, or an instrument is not installed."""


class AnswerError(AssessError, ValueError):
    """Answers to an instrument cannot be scored as given."""


class SettingError(AssessError, ValueError):
    """An instrument setting is unknown or given a value it does not allow."""


def format_allowed(values, limit: int = 12) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", … ({len(values)} in all)" if len(values) > limit else "")


__all__ = ["Code", "CodeCatalogue", "Problem", "problem", "AssessError", "InstrumentError", "AnswerError", "SettingError",
           "format_allowed"]
