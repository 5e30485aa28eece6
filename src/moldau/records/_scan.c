/*
 * moldau.records._scan: the per-record walk of record validation, in C.
 *
 * Why: validating every record of every produced batch (what Kafka's LogValidator
 * does) costs about a microsecond per record in pure Python, more than the whole
 * produce path is allowed (docs/07-performance.md). This module does only the hot
 * loop; moldau/records/validation.py drives it, formats messages and raises, and
 * holds a pure-Python twin of scan() (_scan_py) with identical results, used when
 * this module is not built or MOLDAU_PURE_PYTHON=1.
 *
 * scan(data, count, base_timestamp, check_keys, min_timestamp, max_timestamp) walks
 * `count` v2 records in the (uncompressed) buffer `data` and returns a 7-tuple
 *
 *     (kind, index, a, b, max_timestamp, keyless, out_of_range)
 *
 * kind 0 means the records are well formed: max_timestamp is the largest
 * baseTimestamp + timestampDelta (at least -1, Kafka's NO_TIMESTAMP), keyless a
 * list of the indices of records with a null key (only when check_keys, else
 * None), out_of_range a list of the indices of the other records whose timestamp
 * is not -1 and outside [min_timestamp, max_timestamp] (Kafka's order: a record
 * gets a key error or a timestamp error, not both). Any other kind names the first
 * defect (keyless and out_of_range are then None) (see the KIND_* constants, mirrored in validation.py) of record `index`,
 * with details in a and b.
 *
 * Varints follow Kafka's ByteUtils: a varint (int32) takes at most 5 bytes, a
 * varlong (int64) at most 10; bits beyond the type's width are dropped, and the
 * zigzag decoding is done in the type's width. Timestamps add with wrap-around
 * like Java longs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

enum {
    KIND_OK = 0,
    KIND_EOF = 1,              /* fewer records than the batch declares */
    KIND_REMAINING = 2,        /* a = bytes left after the last record */
    KIND_STRUCTURE = 3,        /* bad varint, field overrunning its record, bad length */
    KIND_SIZE_OVER = 4,        /* a = declared length, b = bytes remaining */
    KIND_SIZE_MISMATCH = 5,    /* a = declared length, b = bytes the fields took */
    KIND_HEADER_COUNT_NEG = 6, /* a = header count */
    KIND_HEADER_COUNT_BIG = 7, /* a = header count */
    KIND_HEADER_KEY_NEG = 8,   /* a = header key length */
    KIND_OFFSET_DELTA = 9,     /* a = offset delta found */
};

/* Read a zigzag varint of at most 5 bytes from p[*pos..end). 0 on success, -1 if
 * truncated, -2 if longer than 5 bytes. */
static inline int
read_varint(const uint8_t *p, Py_ssize_t end, Py_ssize_t *pos, int32_t *out)
{
    Py_ssize_t i = *pos;
    uint32_t raw = 0;
    int shift = 0;
    for (int n = 0; n < 5; n++) {
        if (i >= end)
            return -1;
        uint8_t b = p[i++];
        raw |= (uint32_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *pos = i;
            *out = (int32_t)((raw >> 1) ^ (uint32_t)(-(int32_t)(raw & 1)));
            return 0;
        }
        shift += 7;
    }
    return -2;
}

/* Same for a varlong of at most 10 bytes. */
static inline int
read_varlong(const uint8_t *p, Py_ssize_t end, Py_ssize_t *pos, int64_t *out)
{
    Py_ssize_t i = *pos;
    uint64_t raw = 0;
    int shift = 0;
    for (int n = 0; n < 10; n++) {
        if (i >= end)
            return -1;
        uint8_t b = p[i++];
        raw |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *pos = i;
            *out = (int64_t)((raw >> 1) ^ (uint64_t)(-(int64_t)(raw & 1)));
            return 0;
        }
        shift += 7;
    }
    return -2;
}

static PyObject *
result(int kind, Py_ssize_t index, long long a, long long b, long long max_ts, PyObject *keyless,
       PyObject *out_of_range)
{
    PyObject *t = Py_BuildValue("(inLLLOO)", kind, index, a, b, max_ts,
                                keyless ? keyless : Py_None,
                                out_of_range ? out_of_range : Py_None);
    Py_XDECREF(keyless);
    Py_XDECREF(out_of_range);
    return t;
}

static int
append_index(PyObject *list, Py_ssize_t index)
{
    PyObject *i = PyLong_FromSsize_t(index);
    if (i == NULL)
        return -1;
    int rc = PyList_Append(list, i);
    Py_DECREF(i);
    return rc;
}

/* Skip a byte array of `len` bytes (len -1: null; below -1: invalid). */
static inline int
skip_bytes(Py_ssize_t *pos, Py_ssize_t record_end, int32_t len)
{
    if (len < -1)
        return -1;
    if (len > 0) {
        if ((Py_ssize_t)len > record_end - *pos)
            return -1;
        *pos += len;
    }
    return 0;
}

static PyObject *
scan(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer view;
    Py_ssize_t count;
    long long base_timestamp, min_timestamp, max_timestamp;
    int check_keys;
    if (!PyArg_ParseTuple(args, "y*nLpLL:scan", &view, &count, &base_timestamp, &check_keys,
                          &min_timestamp, &max_timestamp))
        return NULL;

    const uint8_t *p = (const uint8_t *)view.buf;
    const Py_ssize_t end = view.len;
    Py_ssize_t pos = 0;
    int64_t max_ts = -1;
    PyObject *keyless = NULL;
    int kind = KIND_OK;
    Py_ssize_t index = 0;
    long long a = 0, b = 0;

    PyObject *out_of_range = PyList_New(0);
    if (out_of_range == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (check_keys) {
        keyless = PyList_New(0);
        if (keyless == NULL) {
            Py_DECREF(out_of_range);
            PyBuffer_Release(&view);
            return NULL;
        }
    }

    for (index = 0; index < count; index++) {
        int32_t length, offset_delta, key_len, value_len, header_count;
        int64_t timestamp_delta;
        int rc;
        if (pos >= end) {
            kind = KIND_EOF;
            goto done;
        }
        rc = read_varint(p, end, &pos, &length);
        if (rc == -1) {
            kind = KIND_EOF;
            goto done;
        }
        if (rc < 0 || length < 0) {
            kind = KIND_STRUCTURE;
            goto done;
        }
        if ((Py_ssize_t)length > end - pos) {
            kind = KIND_SIZE_OVER;
            a = length;
            b = end - pos;
            goto done;
        }
        const Py_ssize_t record_start = pos;
        const Py_ssize_t record_end = pos + length;
        if (record_end - pos < 1) {
            kind = KIND_STRUCTURE;
            goto done;
        }
        pos += 1; /* attributes: unused in v2 */
        if (read_varlong(p, record_end, &pos, &timestamp_delta) != 0 ||
            read_varint(p, record_end, &pos, &offset_delta) != 0) {
            kind = KIND_STRUCTURE;
            goto done;
        }
        if (offset_delta != index) {
            kind = KIND_OFFSET_DELTA;
            a = offset_delta;
            goto done;
        }
        if (read_varint(p, record_end, &pos, &key_len) != 0 ||
            skip_bytes(&pos, record_end, key_len) != 0 ||
            read_varint(p, record_end, &pos, &value_len) != 0 ||
            skip_bytes(&pos, record_end, value_len) != 0 ||
            read_varint(p, record_end, &pos, &header_count) != 0) {
            kind = KIND_STRUCTURE;
            goto done;
        }
        if (header_count < 0) {
            kind = KIND_HEADER_COUNT_NEG;
            a = header_count;
            goto done;
        }
        if ((Py_ssize_t)header_count > record_end - pos) {
            kind = KIND_HEADER_COUNT_BIG;
            a = header_count;
            goto done;
        }
        for (int32_t h = 0; h < header_count; h++) {
            int32_t header_key_len, header_value_len;
            if (read_varint(p, record_end, &pos, &header_key_len) != 0) {
                kind = KIND_STRUCTURE;
                goto done;
            }
            if (header_key_len < 0) {
                kind = KIND_HEADER_KEY_NEG;
                a = header_key_len;
                goto done;
            }
            if (skip_bytes(&pos, record_end, header_key_len) != 0 ||
                read_varint(p, record_end, &pos, &header_value_len) != 0 ||
                skip_bytes(&pos, record_end, header_value_len) != 0) {
                kind = KIND_STRUCTURE;
                goto done;
            }
        }
        if (pos != record_end) {
            kind = KIND_SIZE_MISMATCH;
            a = length;
            b = pos - record_start;
            goto done;
        }
        int64_t timestamp = (int64_t)((uint64_t)base_timestamp + (uint64_t)timestamp_delta);
        if (timestamp > max_ts)
            max_ts = timestamp;
        PyObject *bad = NULL;
        if (keyless != NULL && key_len < 0)
            bad = keyless;
        else if (timestamp != -1 && (timestamp < min_timestamp || timestamp > max_timestamp))
            bad = out_of_range;
        if (bad != NULL && append_index(bad, index) < 0) {
            Py_XDECREF(keyless);
            Py_DECREF(out_of_range);
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    if (pos != end) {
        kind = KIND_REMAINING;
        index = count;
        a = end - pos;
    }
done:
    PyBuffer_Release(&view);
    if (kind != KIND_OK) {
        Py_XDECREF(keyless);
        Py_DECREF(out_of_range);
        return result(kind, index, a, b, (long long)max_ts, NULL, NULL);
    }
    return result(kind, count, 0, 0, (long long)max_ts, keyless, out_of_range);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, count, base_timestamp, check_keys, min_timestamp, max_timestamp) -> "
     "(kind, index, a, b, max_timestamp, keyless, out_of_range): walk `count` v2 records "
     "in `data`; see moldau.records.validation."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan",
    "Per-record walk of Kafka v2 record batches (see moldau.records.validation).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    PyObject *m = PyModule_Create(&module);
    /* Bumped with every change of scan()'s arguments or result, so that a stale
     * build left in a source tree is not called with the wrong ones. */
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", 2) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
