"""The OpenAPI 3.1 description of the JSON API (served at /api/openapi.json; tests check it
names every API route and that responses match it)."""
from __future__ import annotations

from assess._version import __version__

from .errors import WebCode


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema):
    return {"content": {"application/json": {"schema": schema}}}


ERR = {"description": "Error (one shape for every route)", **_json(_ref("Error"))}
ANSWERS = {"type": "object", "description": "Item and field id → option code; ICD-10 fields take a list.",
           "additionalProperties": {"oneOf": [{"type": "integer"}, {"type": "string"},
                                              {"type": "array", "items": {"type": "string"}}]},
           "example": {"B.1.1": 4, "B.3.9": "0b", "A.4.1": ["F03"]}}


def spec() -> dict:
    common = {"401": ERR, "403": ERR, "422": ERR, "400": ERR, "500": ERR}
    return {
        "openapi": "3.1.0",
        "info": {"title": "assess web API", "version": __version__,
                 "description": "Score GB/T 42195 and other assessments, submit signed results, and look up the "
                                "grade a department may recognise. Identity numbers travel only in request "
                                "bodies and are returned masked (first 6 and last 1 characters)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/openapi.json": {"get": {"summary": "This description", "security": [],
                                          "responses": {"200": {"description": "OpenAPI document"}}}},
            "/api/instruments": {"get": {"summary": "Installed instruments", "responses": {
                "200": {"description": "Instrument versions", **_json({"type": "array", "items": _ref("InstrumentRef")})},
                **common}}},
            "/api/score": {"post": {"summary": "Score one assessment (stores nothing)",
                                    "requestBody": {"required": True, **_json(_ref("ScoreRequest"))},
                                    "responses": {"200": {"description": "Result", **_json(_ref("Result"))},
                                                  **common}}},
            "/api/submissions": {"post": {
                "summary": "Score and store one assessment, signed by this department (role assessor). "
                           "Idempotent per submission_id: a retry returns 200 and the same record.",
                "requestBody": {"required": True, **_json(_ref("SubmissionRequest"))},
                "responses": {"201": {"description": "Stored", **_json(_ref("Submission"))},
                              "200": {"description": "Already stored (retry)", **_json(_ref("Submission"))},
                              **common}}},
            "/api/recognitions": {"post": {
                "summary": "The grade the token's department may rely on for a purpose (role officer). Audited.",
                "requestBody": {"required": True, **_json(_ref("RecognitionRequest"))},
                "responses": {"200": {"description": "Recognition (recognised true or false, with the reason)",
                                      **_json(_ref("Recognition"))}, **common}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token an administrator issued to a system account."}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["status", "code", "title", "message", "problems"],
                    "properties": {
                        "status": {"type": "integer"},
                        "code": {"type": "string", "description": "An assess code (RESP_002, STORE_005 …) or "
                                 + ", ".join(c.name for c in WebCode)},
                        "title": {"type": "string"}, "message": {"type": "string"},
                        "problems": {"type": "array", "items": {"type": "object", "required": ["code", "message"],
                                     "properties": {"code": {"type": "string"}, "title": {"type": "string"},
                                                    "message": {"type": "string"}, "item": {"type": "string"},
                                                    "line": {"type": "integer"}}}}}}}},
                "InstrumentRef": {"type": "object", "properties": {
                    "id": {"type": "string"}, "version": {"type": "string"}, "title": {"type": "string"},
                    "title_en": {"type": "string"}, "effective_date": {"type": ["string", "null"]}}},
                "ScoreRequest": {"type": "object", "required": ["instrument", "answers"], "properties": {
                    "instrument": {"type": "string", "example": "gbt42195-2022"},
                    "version": {"type": "string"}, "settings": {"type": "object"}, "answers": ANSWERS,
                    "allow_incomplete": {"type": "boolean", "default": False}}},
                "SubmissionRequest": {"type": "object", "required": [
                    "submission_id", "instrument", "answers", "id_number", "assessed_on", "assessors", "reason"],
                    "properties": {
                        "submission_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$",
                                          "description": "Chosen by the client; the same id is stored once."},
                        "instrument": {"type": "string"}, "version": {"type": "string"},
                        "settings": {"type": "object"}, "answers": ANSWERS,
                        "id_number": {"type": "string", "description": "公民身份号码 (18 characters)"},
                        "assessed_on": {"type": "string", "format": "date"},
                        "assessors": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "organisation": {"type": "string"},
                        "reason": {"type": "string", "enum": ["first", "routine", "change", "review"]}}},
                "Submission": {"type": "object", "required": ["record_id", "stored", "result"], "properties": {
                    "record_id": {"type": "string"}, "stored": {"type": "boolean"},
                    "id_number_masked": {"type": "string"}, "level": {"type": ["integer", "null"]},
                    "level_label": {"type": ["string", "null"]}, "total": {"type": ["integer", "null"]},
                    "result": _ref("Result")}},
                "RecognitionRequest": {"type": "object", "required": ["id_number", "purpose"], "properties": {
                    "id_number": {"type": "string"}, "purpose": {"type": "string", "example": "ltc_benefit"},
                    "on": {"type": "string", "format": "date"}}},
                "Recognition": {"type": "object", "required": ["recognised", "reason", "detail", "detail_zh"], "properties": {
                    "recognised": {"type": "boolean"},
                    "reason": {"type": "string", "enum": [
                        "recognised", "no_record", "revoked", "signature_invalid", "instrument_not_accepted",
                        "issuer_not_accepted", "level_not_accepted", "too_few_assessors", "expired"]},
                    "detail": {"type": "string"},
                    "detail_zh": {"type": "string", "description": "detail in Chinese, for officers"},
                    "department": {"type": "string"}, "purpose": {"type": "string"},
                    "on": {"type": "string"}, "person_key": {"type": "string"},
                    "level": {"type": ["integer", "null"]}, "scale": {"type": ["string", "null"]},
                    "crosswalk": {"type": ["string", "null"]}, "record": {"type": ["object", "null"]},
                    "id_number_masked": {"type": "string"}}},
                "Result": {"type": "object", "required": ["instrument", "version", "status", "domains", "total",
                                                          "level", "trace"], "properties": {
                    "instrument": {"type": "string"}, "version": {"type": "string"},
                    "definition_hash": {"type": "string"}, "engine_version": {"type": "string"},
                    "settings": {"type": "object"}, "status": {"type": "string"}, "items": {"type": "object"},
                    "domains": {"type": "object"}, "scores": {"type": "object"},
                    "total": {"type": ["integer", "null"]}, "level_initial": {"type": ["integer", "null"]},
                    "level": {"type": ["integer", "null"]}, "level_label": {"type": ["string", "null"]},
                    "rules": {"type": "array"}, "problems": {"type": "array"}, "trace": {"type": "array"}}},
            },
        },
    }
