/* The per-frame book loops of venuefeed in C: the same semantics as the pure-Python
 * code they replace (venuefeed/book.py `_Side.apply` and `_Side.load`, and
 * venuefeed/venues/checks.py `levels`), several times cheaper per level.
 *
 * Only the common path lives here: dict hits in the memos the Python code keeps
 * (`book._KEYS`, `book._SIZES`, `exact._CHECKED`, `Numbers.known`) and plain list
 * and dict operations. Every miss calls the very Python function the fallback
 * calls (`price_key`, `exact.checked`, `exact.canon`, `Numbers.learn`), so
 * validation, memo bounds and rejections stay defined in one place.
 *
 * Inputs are untrusted: every object is type-checked before a fast path reads it,
 * and anything unexpected takes the generic C-API route that behaves like the
 * Python statement it mirrors (same result, or the same kind of exception).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* Set once by setup(): the Python objects the loops read or fall back to. */
static PyObject *g_keys;          /* book._KEYS: canonical price -> float */
static PyObject *g_sizes;         /* book._SIZES: valid size -> canonical */
static PyObject *g_checked_memo;  /* exact._CHECKED: text -> canonical or "" */
static PyObject *g_price_key;     /* book.price_key */
static PyObject *g_size;          /* book._size */
static PyObject *g_checked;       /* exact.checked */
static PyObject *g_canon;         /* exact.canon */
static PyTypeObject *g_level;     /* models.BookLevel */
static PyObject *g_unknown;       /* Inconsistency.UNKNOWN_LEVEL */
static PyObject *g_invalid;       /* Inconsistency.INVALID_LEVEL */
static PyObject *g_crossed;       /* Inconsistency.CROSSED */
static Py_ssize_t g_price_off = -1, g_size_off = -1;
static PyObject *g_learn;         /* checks.Numbers.learn (the function) */
static PyObject *g_non_negative;  /* checks._non_negative (the rule of prices and sizes) */

static PyObject *s_price, *s_size, *s_levels, *s_keys, *s_sign, *s_strip, *s_zero_dot, *s_zero,
    *s_known, *s_limit, *s_rule, *s_empty, *s_asset_id, *s_side, *s_hash, *s_best_bid,
    *s_best_ask, *s_buy, *s_sell, *s_delta_kwnames;

#define MAX_DIGITS 18 /* exact.MAX_INTEGER_DIGITS and exact.MAX_FRACTION_DIGITS */

/* The slot offset of a BookLevel field, or -1 to read it with getattr. */
static Py_ssize_t
slot_offset(PyTypeObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type) && ((PyDescrObject *)descr)->d_type == type) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX || member->type == T_OBJECT) {
            offset = member->offset;
        }
    }
    Py_DECREF(descr);
    return offset;
}

/* level.<name> as a new reference: a slot read for an exact BookLevel, else getattr. */
static PyObject *
field(PyObject *level, Py_ssize_t offset, PyObject *name)
{
    if (offset >= 0 && Py_IS_TYPE(level, g_level)) {
        PyObject *value = *(PyObject **)((char *)level + offset);
        if (value != NULL) {
            return Py_NewRef(value);
        }
    }
    return PyObject_GetAttr(level, name);
}

static PyObject *
new_level(PyObject *price, PyObject *size)
{
    PyObject *args[2] = {price, size};
    return PyObject_Vectorcall((PyObject *)g_level, args, 2, NULL);
}

static int
wrong_count(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs == expected) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, expected, nargs);
    return 1;
}

static PyObject *
call1(PyObject *func, PyObject *arg)
{
    return PyObject_CallOneArg(func, arg);
}

/* exact._check(text) for a str: its canonical text if it is a plain finite decimal, else "".
 *
 * One pass over the characters: an optional "-", 1-18 ASCII digits, optionally "."
 * and 1-18 digits; then the leading zeros of the whole part and the trailing zeros
 * of the fraction go ("-0.0" -> "0"). */
static PyObject *
canonical(PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0 || n > 2 * MAX_DIGITS + 2 || !PyUnicode_IS_ASCII(text)) {
        return Py_NewRef(s_empty);
    }
    const char *s = (const char *)PyUnicode_DATA(text);
    Py_ssize_t i = s[0] == '-', whole = i, frac = -1, frac_end = -1;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    Py_ssize_t whole_end = i;
    if (i < n) {
        if (s[i] != '.') {
            return Py_NewRef(s_empty);
        }
        frac = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        frac_end = i;
        if (i < n || frac_end == frac || frac_end - frac > MAX_DIGITS) {
            return Py_NewRef(s_empty);
        }
    }
    if (whole_end == whole || whole_end - whole > MAX_DIGITS) {
        return Py_NewRef(s_empty);
    }
    while (whole < whole_end - 1 && s[whole] == '0') {
        whole++;
    }
    while (frac_end > frac && s[frac_end - 1] == '0') {
        frac_end--;
    }
    char out[2 * MAX_DIGITS + 3];
    Py_ssize_t len = 0;
    if (s[0] == '-' && !(whole_end - whole == 1 && s[whole] == '0' && frac_end <= frac)) {
        out[len++] = '-';
    }
    memcpy(out + len, s + whole, whole_end - whole);
    len += whole_end - whole;
    if (frac_end > frac) {
        out[len++] = '.';
        memcpy(out + len, s + frac, frac_end - frac);
        len += frac_end - frac;
    }
    if (len == n && memcmp(out, s, n) == 0) {
        return Py_NewRef(text);
    }
    return PyUnicode_FromStringAndSize(out, len);
}

PyDoc_STRVAR(check_doc,
"check(text) -> str\n\n"
"exact._check(text): the canonical text, or \"\" (exposed so the tests hold the two equal).");

static PyObject *
k_check(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "check() takes a str");
        return NULL;
    }
    return canonical(text);
}

/* 1 when fallback is Numbers.learn bound to a table whose rule is the non-negative one
 * (Binance prices and sizes), 0 otherwise, -1 on error: then a valid text's answer is
 * its canonical form, which C can compute without the Python call. */
static int
plain_non_negative(PyObject *fallback)
{
    if (g_learn == NULL || !PyMethod_Check(fallback) ||
        PyMethod_GET_FUNCTION(fallback) != g_learn) {
        return 0;
    }
    PyObject *rule = PyObject_GetAttr(PyMethod_GET_SELF(fallback), s_rule);
    if (rule == NULL) {
        return -1;
    }
    int plain = rule == g_non_negative;
    Py_DECREF(rule);
    return plain;
}

/* The canonical text of a valid non-negative number, or NULL with no exception set when
 * the text is not one (the caller asks the table, which raises its own Invalid). A zero
 * is the interned "0": deletes are common and need no new string. */
static PyObject *
non_negative_text(PyObject *text)
{
    PyObject *canon = canonical(text);
    if (canon == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(canon);
    if (n == 0 || PyUnicode_READ_CHAR(canon, 0) == '-') {
        Py_DECREF(canon);
        return NULL;
    }
    if (n == 1 && PyUnicode_READ_CHAR(canon, 0) == '0') {
        Py_SETREF(canon, Py_NewRef(s_zero));
    }
    return canon;
}

/* fallback(text) -- a venue number not seen before -- as a new reference.
 *
 * When fallback is Numbers.learn of a non-negative table and the text is valid, learn's
 * work is done here: the check, then the remembered answer, under the table's bound.
 * Anything else, and every invalid text (to raise the table's own Invalid), is the
 * Python call. */
static PyObject *
learn(PyObject *fallback, PyObject *text)
{
    int plain = PyUnicode_CheckExact(text) ? plain_non_negative(fallback) : 0;
    if (plain <= 0) {
        return plain < 0 ? NULL : call1(fallback, text);
    }
    PyObject *canon = non_negative_text(text);
    if (canon == NULL) {
        return PyErr_Occurred() ? NULL : call1(fallback, text);
    }
    PyObject *numbers = PyMethod_GET_SELF(fallback);
    PyObject *known = PyObject_GetAttr(numbers, s_known);
    PyObject *limit = known ? PyObject_GetAttr(numbers, s_limit) : NULL;
    if (limit == NULL) {
        Py_XDECREF(known);
        Py_DECREF(canon);
        return NULL;
    }
    if (!PyDict_CheckExact(known) || !PyLong_CheckExact(limit)) {
        Py_DECREF(known);
        Py_DECREF(limit);
        Py_DECREF(canon);
        return call1(fallback, text);
    }
    Py_ssize_t bound = PyLong_AsSsize_t(limit);
    Py_DECREF(limit);
    if (bound == -1 && PyErr_Occurred()) {
        Py_DECREF(known);
        Py_DECREF(canon);
        return NULL;
    }
    if (PyDict_GET_SIZE(known) >= bound) {
        PyDict_Clear(known);
    }
    int stored = PyDict_SetItem(known, text, canon);
    Py_DECREF(known);
    if (stored < 0) {
        Py_DECREF(canon);
        return NULL;
    }
    return canon;
}

/* A size of a depth update when its table is a plain non-negative one: the canonical
 * text straight away, neither looked up nor remembered. Most sizes in a depth stream are
 * new texts, so a memo of them costs a miss, an insert and a table that outgrows the CPU
 * caches, for hits that a pass over ten characters gives as cheaply. An invalid text is
 * the table's Python call, which raises its Invalid. */
static PyObject *
direct(PyObject *fallback, PyObject *text)
{
    PyObject *canon = PyUnicode_CheckExact(text) ? non_negative_text(text) : NULL;
    if (canon == NULL) {
        return PyErr_Occurred() ? NULL : call1(fallback, text);
    }
    return canon;
}

/* `memo.get(text) or fallback(text)` as a new reference. */
static PyObject *
known_or(PyObject *memo, PyObject *fallback, PyObject *text)
{
    PyObject *hit = PyDict_GetItemWithError(memo, text);
    if (hit != NULL) {
        Py_INCREF(hit);
        int truth = PyUnicode_CheckExact(hit) ? PyUnicode_GET_LENGTH(hit) > 0
                                              : PyObject_IsTrue(hit);
        if (truth > 0) {
            return hit;
        }
        Py_DECREF(hit);
        if (truth < 0) {
            return NULL;
        }
    }
    else if (PyErr_Occurred()) {
        return NULL;
    }
    return learn(fallback, text);
}

/* A float key as a C double; -1 with an exception set if it is not a number. */
static int
as_double(PyObject *value, double *out)
{
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return 0;
    }
    *out = PyFloat_AsDouble(value);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* a < b for two keys (floats in a book; anything else compares as Python does). */
static int
less(PyObject *a, PyObject *b)
{
    if (PyFloat_CheckExact(a) && PyFloat_CheckExact(b)) {
        return PyFloat_AS_DOUBLE(a) < PyFloat_AS_DOUBLE(b);
    }
    Py_INCREF(a);
    Py_INCREF(b);
    int result = PyObject_RichCompareBool(a, b, Py_LT);
    Py_DECREF(a);
    Py_DECREF(b);
    return result;
}

/* keys[at] < key, with `at` checked against the list's current length; -1 on error. */
static int
key_below(PyObject *keys, Py_ssize_t at, PyObject *key)
{
    if (at >= PyList_GET_SIZE(keys)) {
        PyErr_SetString(PyExc_RuntimeError, "book keys changed during a search");
        return -1;
    }
    return less(PyList_GET_ITEM(keys, at), key);
}

/* bisect.bisect_left(keys, key) -- the first index whose key is not below `key` --
 * searched from the end: the best level is last and almost every change lands within
 * a few levels of it, so steps of 1, 2, 4, ... back from the end bracket the index in a
 * comparison or two before the binary search of the bracket; a deep level costs about
 * twice a plain bisection. -1 on error. */
static Py_ssize_t
bisect_left(PyObject *keys, PyObject *key)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys), step = 1;
    while (hi > 0) {
        Py_ssize_t at = hi - step > 0 ? hi - step : 0;
        int below = key_below(keys, at, key);
        if (below < 0) {
            return -1;
        }
        if (below) {
            lo = at + 1;
            break;
        }
        hi = at;
        step *= 2;
    }
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        int below = key_below(keys, mid, key);
        if (below < 0) {
            return -1;
        }
        if (below) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

/* `not size.strip("0.")` for a str: 1 if every character is "0" or "." (or it is empty). */
static int
all_zero(PyObject *size)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(size);
    int kind = PyUnicode_KIND(size);
    const void *data = PyUnicode_DATA(size);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c != '0' && c != '.') {
            return 0;
        }
    }
    return 1;
}

/* The side's attributes: levels and keys (aligned lists), sign (float). 0 or -1. */
static int
side_parts(PyObject *side, PyObject **levels, PyObject **keys, PyObject **sign)
{
    *levels = PyObject_GetAttr(side, s_levels);
    *keys = *levels ? PyObject_GetAttr(side, s_keys) : NULL;
    *sign = *keys ? PyObject_GetAttr(side, s_sign) : NULL;
    if (*sign == NULL) {
        goto fail;
    }
    if (!PyList_Check(*levels) || !PyList_Check(*keys) || !PyFloat_Check(*sign)) {
        PyErr_SetString(PyExc_TypeError, "not a book side (levels list, keys list, float sign)");
        goto fail;
    }
    return 0;
fail:
    Py_XDECREF(*levels);
    Py_XDECREF(*keys);
    Py_XDECREF(*sign);
    return -1;
}

/* One change of apply(): 0 applied, 1 unknown level removed, 2 invalid level, -1 error. */
static int
apply_one(PyObject *levels, PyObject *keys, double sign, PyObject *level)
{
    int status = -1;
    double key;
    PyObject *keyobj = NULL, *size = NULL, *stripped = NULL;
    Py_INCREF(level); /* held: a getattr or a callback may drop it from the caller's list */
    PyObject *price = field(level, g_price_off, s_price);
    if (price == NULL) {
        Py_DECREF(level);
        return -1;
    }
    PyObject *hit = PyDict_GetItemWithError(g_keys, price);
    if (hit != NULL) {
        if (as_double(hit, &key) < 0) {
            goto done;
        }
    }
    else {
        if (PyErr_Occurred()) {
            goto done;
        }
        /* Not a canonical price seen before: checked (and stored canonical) in Python. */
        PyObject *found = call1(g_price_key, price);
        if (found == NULL) {
            goto done;
        }
        if (found == Py_None) {
            Py_DECREF(found);
            status = 2;
            goto done;
        }
        int bad = as_double(found, &key);
        Py_DECREF(found);
        if (bad) {
            goto done;
        }
        PyObject *canonical = call1(g_checked, price);
        if (canonical == NULL) {
            goto done;
        }
        int truth = PyObject_IsTrue(canonical);
        if (truth < 0) {
            Py_DECREF(canonical);
            goto done;
        }
        if (truth) {
            Py_SETREF(price, canonical);
        }
        else {
            Py_DECREF(canonical);
        }
        size = field(level, g_size_off, s_size);
        if (size == NULL) {
            goto done;
        }
        Py_SETREF(level, new_level(price, size));
        if (level == NULL) {
            goto done;
        }
        Py_CLEAR(size);
    }
    key *= sign;
    size = field(level, g_size_off, s_size);
    if (size == NULL) {
        goto done;
    }
    if (!PyUnicode_Check(size)) {
        /* What `size.strip("0.")` raises for this object (AttributeError, TypeError). */
        stripped = PyObject_CallMethodOneArg(size, s_strip, s_zero_dot);
        if (stripped != NULL) {
            PyErr_Format(PyExc_TypeError, "level size is not a str: %.80R", size);
        }
        goto done;
    }
    int zero = all_zero(size);
    if (!zero) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(size);
        if (PyUnicode_READ_CHAR(size, 0) == '-') {
            status = 2;
            goto done;
        }
        Py_UCS4 last = PyUnicode_READ_CHAR(size, n - 1);
        if ((last == '0' || last == '.') && PyUnicode_FindChar(size, '.', 0, n, 1) >= 0) {
            PyObject *canonical = call1(g_canon, size);
            if (canonical == NULL) {
                goto done;
            }
            PyObject *level_price = field(level, g_price_off, s_price);
            if (level_price == NULL) {
                Py_DECREF(canonical);
                goto done;
            }
            Py_SETREF(level, new_level(level_price, canonical));
            Py_DECREF(level_price);
            Py_DECREF(canonical);
            if (level == NULL) {
                goto done;
            }
        }
    }
    keyobj = PyFloat_FromDouble(key);
    if (keyobj == NULL) {
        goto done;
    }
    Py_ssize_t at = bisect_left(keys, keyobj);
    if (at < 0) {
        goto done;
    }
    int here = 0;
    if (at < PyList_GET_SIZE(keys)) {
        PyObject *found = PyList_GET_ITEM(keys, at);
        if (PyFloat_CheckExact(found)) {
            here = PyFloat_AS_DOUBLE(found) == key;
        }
        else {
            Py_INCREF(found);
            here = PyObject_RichCompareBool(found, keyobj, Py_EQ);
            Py_DECREF(found);
            if (here < 0) {
                goto done;
            }
        }
    }
    /* Nothing below calls back into Python: the two lists stay as checked here. */
    if (PyList_GET_SIZE(levels) != PyList_GET_SIZE(keys) || at > PyList_GET_SIZE(keys)) {
        PyErr_SetString(PyExc_RuntimeError, "book side keys and levels are out of step");
        goto done;
    }
    if (zero) {
        if (!here) {
            status = 1;
        }
        else if (PyList_SetSlice(keys, at, at + 1, NULL) == 0 &&
                 PyList_SetSlice(levels, at, at + 1, NULL) == 0) {
            status = 0;
        }
        goto done;
    }
    if (here) {
        status = PyList_SetItem(levels, at, Py_NewRef(level));
    }
    else if (PyList_Insert(keys, at, keyobj) == 0) {
        status = PyList_Insert(levels, at, level);
    }
done:
    Py_XDECREF(stripped);
    Py_XDECREF(keyobj);
    Py_XDECREF(size);
    Py_XDECREF(level);
    Py_DECREF(price);
    return status;
}

/* apply(side, changes) as a new reference (None, UNKNOWN_LEVEL or INVALID_LEVEL). */
static PyObject *
apply_side(PyObject *side, PyObject *changes)
{
    PyObject *levels, *keys, *signobj, *result = NULL;
    if (side_parts(side, &levels, &keys, &signobj) < 0) {
        return NULL;
    }
    double sign = PyFloat_AS_DOUBLE(signobj);
    PyObject *seq = PySequence_Fast(changes, "changes must be iterable");
    PyObject *problem = Py_None;
    if (seq == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        int status = apply_one(levels, keys, sign, PySequence_Fast_GET_ITEM(seq, i));
        if (status < 0) {
            goto done;
        }
        if (status == 2) {
            result = Py_NewRef(g_invalid);
            goto done;
        }
        if (status == 1) {
            problem = g_unknown;
        }
    }
    result = Py_NewRef(problem);
done:
    Py_XDECREF(seq);
    Py_DECREF(levels);
    Py_DECREF(keys);
    Py_DECREF(signobj);
    return result;
}

static int
kernel_ready(void)
{
    if (g_level == NULL || g_crossed == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "venuefeed._kernel.setup() was not called");
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(apply_doc,
"apply(side, changes) -> Inconsistency | None\n\n"
"book._Side.apply(side, changes): set each level's absolute size (zero removes it).");

static PyObject *
k_apply(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_count("apply", nargs, 2) || !kernel_ready()) {
        return NULL;
    }
    return apply_side(args[0], args[1]);
}

/* 1 if the best bid is at or above the best ask (both sides non-empty), 0 if not, -1 on
 * error. Ask keys are negated prices, so the best ask is -asks.keys[-1]. */
static int
crossed(PyObject *bids, PyObject *asks)
{
    PyObject *bid_keys = PyObject_GetAttr(bids, s_keys);
    PyObject *ask_keys = bid_keys ? PyObject_GetAttr(asks, s_keys) : NULL;
    int result = -1;
    if (ask_keys == NULL) {
        goto done;
    }
    if (!PyList_Check(bid_keys) || !PyList_Check(ask_keys)) {
        PyErr_SetString(PyExc_TypeError, "book keys must be lists");
        goto done;
    }
    Py_ssize_t nb = PyList_GET_SIZE(bid_keys), na = PyList_GET_SIZE(ask_keys);
    if (nb == 0 || na == 0) {
        result = 0;
        goto done;
    }
    PyObject *bid = PyList_GET_ITEM(bid_keys, nb - 1), *ask = PyList_GET_ITEM(ask_keys, na - 1);
    if (!PyFloat_CheckExact(bid) || !PyFloat_CheckExact(ask)) {
        PyErr_SetString(PyExc_TypeError, "book keys must be floats");
        goto done;
    }
    result = PyFloat_AS_DOUBLE(bid) >= -PyFloat_AS_DOUBLE(ask);
done:
    Py_XDECREF(bid_keys);
    Py_XDECREF(ask_keys);
    return result;
}

PyDoc_STRVAR(apply_sides_doc,
"apply_sides(bids, asks, bid_changes, ask_changes, tolerate_unknown) -> Inconsistency | None\n\n"
"book._apply_sides: both sides' changes, then the book's one problem, if any.");

static PyObject *
k_apply_sides(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_count("apply_sides", nargs, 5) || !kernel_ready()) {
        return NULL;
    }
    int tolerate = PyObject_IsTrue(args[4]);
    if (tolerate < 0) {
        return NULL;
    }
    PyObject *bid_problem = apply_side(args[0], args[2]);
    if (bid_problem == NULL) {
        return NULL;
    }
    PyObject *ask_problem = apply_side(args[1], args[3]);
    if (ask_problem == NULL) {
        Py_DECREF(bid_problem);
        return NULL;
    }
    PyObject *problem = NULL;
    if (bid_problem == g_invalid || ask_problem == g_invalid) {
        problem = g_invalid;
    }
    else if (!tolerate && (bid_problem == g_unknown || ask_problem == g_unknown)) {
        problem = g_unknown;
    }
    Py_DECREF(bid_problem);
    Py_DECREF(ask_problem);
    if (problem != NULL) {
        return Py_NewRef(problem);
    }
    int is_crossed = crossed(args[0], args[1]);
    if (is_crossed < 0) {
        return NULL;
    }
    return Py_NewRef(is_crossed ? g_crossed : Py_None);
}

/* `exact.checked(text)` for a str: the memo's answer, or the Python call on a miss. */
static PyObject *
checked_text(PyObject *text)
{
    PyObject *hit = PyDict_GetItemWithError(g_checked_memo, text);
    if (hit != NULL) {
        if (PyUnicode_CheckExact(hit)) {
            return Py_NewRef(PyUnicode_GET_LENGTH(hit) ? hit : Py_None);
        }
    }
    else if (PyErr_Occurred()) {
        return NULL;
    }
    return call1(g_checked, text);
}

/* `memo.get(text)` then `fallback(text)` on a miss (book.price_key, book._size). */
static PyObject *
memo_or_call(PyObject *memo, PyObject *fallback, PyObject *text)
{
    PyObject *hit = PyDict_GetItemWithError(memo, text);
    if (hit != NULL) {
        return Py_NewRef(hit);
    }
    return PyErr_Occurred() ? NULL : call1(fallback, text);
}

/* One level of load(): 0 kept or skipped, 1 invalid, -1 error. */
static int
load_one(PyObject *loaded, double sign, PyObject *level)
{
    int status = -1;
    PyObject *price = NULL, *key = NULL, *size = NULL, *keyobj = NULL;
    Py_INCREF(level);
    PyObject *raw_price = field(level, g_price_off, s_price);
    if (raw_price == NULL) {
        Py_DECREF(level);
        return -1;
    }
    price = PyUnicode_Check(raw_price) ? checked_text(raw_price) : Py_NewRef(Py_None);
    if (price == NULL) {
        goto done;
    }
    key = price == Py_None ? Py_NewRef(Py_None) : memo_or_call(g_keys, g_price_key, price);
    if (key == NULL) {
        goto done;
    }
    PyObject *raw_size = field(level, g_size_off, s_size);
    if (raw_size == NULL) {
        goto done;
    }
    size = memo_or_call(g_sizes, g_size, raw_size);
    Py_DECREF(raw_size);
    if (size == NULL) {
        goto done;
    }
    if (price == Py_None || key == Py_None || size == Py_None) {
        status = 1;
        goto done;
    }
    int nonzero = PyObject_RichCompareBool(size, s_zero, Py_NE);
    if (nonzero <= 0) {
        status = nonzero;
        goto done;
    }
    int same = PyObject_RichCompareBool(price, raw_price, Py_EQ);
    if (same > 0) {
        PyObject *level_size = field(level, g_size_off, s_size);
        if (level_size == NULL) {
            goto done;
        }
        same = PyObject_RichCompareBool(size, level_size, Py_EQ);
        Py_DECREF(level_size);
    }
    if (same < 0) {
        goto done;
    }
    if (!same) {
        Py_SETREF(level, new_level(price, size));
        if (level == NULL) {
            goto done;
        }
    }
    double k;
    if (as_double(key, &k) < 0 || (keyobj = PyFloat_FromDouble(sign * k)) == NULL) {
        goto done;
    }
    status = PyDict_SetItem(loaded, keyobj, level) < 0 ? -1 : 0;
done:
    Py_XDECREF(keyobj);
    Py_XDECREF(size);
    Py_XDECREF(key);
    Py_XDECREF(price);
    Py_XDECREF(level);
    Py_DECREF(raw_price);
    return status;
}

PyDoc_STRVAR(load_doc,
"load(side, levels) -> dict[float, BookLevel] | None\n\n"
"The levels of book._Side.load by signed key, or None if a level is not valid.");

static PyObject *
k_load(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_count("load", nargs, 2) || !kernel_ready()) {
        return NULL;
    }
    PyObject *signobj = PyObject_GetAttr(args[0], s_sign);
    if (signobj == NULL) {
        return NULL;
    }
    double sign;
    int bad = as_double(signobj, &sign);
    Py_DECREF(signobj);
    if (bad) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[1], "levels must be iterable");
    if (seq == NULL) {
        return NULL;
    }
    PyObject *loaded = PyDict_New();
    if (loaded == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        int status = load_one(loaded, sign, PySequence_Fast_GET_ITEM(seq, i));
        if (status != 0) {
            Py_DECREF(seq);
            Py_DECREF(loaded);
            return status < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    Py_DECREF(seq);
    return loaded;
}

/* The two texts of one `[price, size]` pair, borrowed from *held (a new reference). */
static int
unpack_pair(PyObject *item, PyObject **held, PyObject **first, PyObject **second)
{
    PyObject *tuple = PyTuple_CheckExact(item) ? Py_NewRef(item) : PySequence_Tuple(item);
    if (tuple == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.100s object",
                         Py_TYPE(item)->tp_name);
        }
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    if (n != 2) {
        if (n < 2) {
            PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 2, got %zd)", n);
        }
        else {
            PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 2)");
        }
        Py_DECREF(tuple);
        return -1;
    }
    *held = tuple;
    *first = PyTuple_GET_ITEM(tuple, 0);
    *second = PyTuple_GET_ITEM(tuple, 1);
    return 0;
}

PyDoc_STRVAR(levels_doc,
"levels(pairs, known_prices, known_sizes, new_price, new_size) -> list[BookLevel]\n\n"
"[BookLevel(known_prices.get(p) or new_price(p), known_sizes.get(q) or new_size(q))\n"
" for p, q in pairs]: the checked canonical levels of a depth update.");

static PyObject *
k_levels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_count("levels", nargs, 5) || !kernel_ready()) {
        return NULL;
    }
    PyObject *prices = args[1], *sizes = args[2], *new_price = args[3], *new_size = args[4];
    if (!PyDict_Check(prices) || !PyDict_Check(sizes)) {
        PyErr_SetString(PyExc_TypeError, "known prices and sizes must be dicts");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "pairs must be iterable");
    if (seq == NULL) {
        return NULL;
    }
    int sizes_direct = plain_non_negative(new_size);
    PyObject *out = sizes_direct < 0 ? NULL : PyList_New(0);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *held, *p, *q, *price, *size, *level;
        PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        int unpacked = unpack_pair(item, &held, &p, &q);
        Py_DECREF(item);
        if (unpacked < 0) {
            goto fail;
        }
        price = known_or(prices, new_price, p);
        size = price == NULL      ? NULL
               : sizes_direct ? direct(new_size, q)
                              : known_or(sizes, new_size, q);
        level = size ? new_level(price, size) : NULL;
        Py_XDECREF(size);
        Py_XDECREF(price);
        Py_DECREF(held);
        if (level == NULL) {
            goto fail;
        }
        int appended = PyList_Append(out, level);
        Py_DECREF(level);
        if (appended < 0) {
            goto fail;
        }
    }
    Py_DECREF(seq);
    return out;
fail:
    Py_DECREF(seq);
    Py_DECREF(out);
    return NULL;
}

/* One venue top-of-book text of a price_change item: None stays None, "" (that side
 * is empty) is "0", anything else a checked price. New reference or NULL. */
static PyObject *
venue_top(PyObject *prices, PyObject *learn_price, PyObject *text)
{
    if (text == Py_None) {
        return Py_NewRef(Py_None);
    }
    if (PyUnicode_CheckExact(text) && PyUnicode_GET_LENGTH(text) == 0) {
        return Py_NewRef(s_zero);
    }
    return known_or(prices, learn_price, text);
}

/* The asset's [bids, asks, best_bid, best_ask, hash] entry of one item; 0 or -1. */
static int
group_item(PyObject *grouped, PyObject *item, PyObject *prices, PyObject *learn_price,
           PyObject *sizes, PyObject *learn_size, int sizes_direct)
{
    PyObject *asset = NULL, *side = NULL, *price = NULL, *size = NULL, *level = NULL;
    PyObject *bid = NULL, *ask = NULL, *digest = NULL, *text = NULL;
    int status = -1;
    asset = PyObject_GetAttr(item, s_asset_id);
    side = asset ? PyObject_GetAttr(item, s_side) : NULL;
    if (side == NULL) {
        goto done;
    }
    int buy = PyUnicode_Check(side) && PyUnicode_Compare(side, s_buy) == 0;
    if (!buy && !(PyUnicode_Check(side) && PyUnicode_Compare(side, s_sell) == 0)) {
        goto done; /* the Python path says why */
    }
    text = PyObject_GetAttr(item, s_price);
    price = text ? known_or(prices, learn_price, text) : NULL;
    Py_CLEAR(text);
    text = price ? PyObject_GetAttr(item, s_size) : NULL;
    size = text == NULL    ? NULL
           : sizes_direct ? direct(learn_size, text)
                          : known_or(sizes, learn_size, text);
    Py_CLEAR(text);
    level = size ? new_level(price, size) : NULL;
    text = level ? PyObject_GetAttr(item, s_best_bid) : NULL;
    bid = text ? venue_top(prices, learn_price, text) : NULL;
    Py_CLEAR(text);
    text = bid ? PyObject_GetAttr(item, s_best_ask) : NULL;
    ask = text ? venue_top(prices, learn_price, text) : NULL;
    Py_CLEAR(text);
    digest = ask ? PyObject_GetAttr(item, s_hash) : NULL;
    if (digest == NULL) {
        goto done;
    }
    PyObject *entry = PyDict_GetItemWithError(grouped, asset);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            goto done;
        }
        PyObject *levels = PyList_New(1), *none = PyList_New(0);
        PyObject *fresh = levels && none ? PyList_New(5) : NULL;
        if (fresh == NULL) {
            Py_XDECREF(levels);
            Py_XDECREF(none);
            goto done;
        }
        PyList_SET_ITEM(levels, 0, Py_NewRef(level));
        PyList_SET_ITEM(fresh, 0, buy ? levels : none);
        PyList_SET_ITEM(fresh, 1, buy ? none : levels);
        PyList_SET_ITEM(fresh, 2, Py_NewRef(bid));
        PyList_SET_ITEM(fresh, 3, Py_NewRef(ask));
        PyList_SET_ITEM(fresh, 4, Py_NewRef(digest));
        status = PyDict_SetItem(grouped, asset, fresh);
        Py_DECREF(fresh);
        goto done;
    }
    if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) != 5) {
        PyErr_SetString(PyExc_RuntimeError, "price_changes: a group was changed");
        goto done;
    }
    if (PyList_Append(PyList_GET_ITEM(entry, buy ? 0 : 1), level) < 0) {
        goto done;
    }
    PyList_SetItem(entry, 2, Py_NewRef(bid));
    PyList_SetItem(entry, 3, Py_NewRef(ask));
    PyList_SetItem(entry, 4, Py_NewRef(digest));
    status = 0;
done:
    Py_XDECREF(asset);
    Py_XDECREF(side);
    Py_XDECREF(price);
    Py_XDECREF(size);
    Py_XDECREF(level);
    Py_XDECREF(bid);
    Py_XDECREF(ask);
    Py_XDECREF(digest);
    return status;
}

/* Change(BookDelta(venue=..., instrument=asset, ..., checksum=digest or None), bid, ask). */
static PyObject *
change_of(PyObject *asset, PyObject *entry, PyObject *const *args)
{
    PyObject *venue = args[3], *delta_type = args[8], *change_type = args[9];
    PyObject *digest = PyList_GET_ITEM(entry, 4);
    int has_digest = PyObject_IsTrue(digest);
    if (has_digest < 0) {
        return NULL;
    }
    PyObject *call[7] = {venue, asset, args[1], args[2], PyList_GET_ITEM(entry, 0),
                         PyList_GET_ITEM(entry, 1), has_digest ? digest : Py_None};
    PyObject *delta = PyObject_Vectorcall(delta_type, call, 0, s_delta_kwnames);
    if (delta == NULL) {
        return NULL;
    }
    PyObject *parts[3] = {delta, PyList_GET_ITEM(entry, 2), PyList_GET_ITEM(entry, 3)};
    PyObject *change = PyObject_Vectorcall(change_type, parts, 3, NULL);
    Py_DECREF(delta);
    return change;
}

PyDoc_STRVAR(price_changes_doc,
"price_changes(items, ts, ts_recv, venue, known_prices, learn_price, known_sizes,\n"
"              learn_size, delta_type, change_type) -> list | None\n\n"
"The Polymarket price_change fast path: one Change per asset when every item is valid,\n"
"else None (and no exception): the Python path then takes the message and says what\n"
"was wrong with which item.");

static PyObject *
k_price_changes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_count("price_changes", nargs, 10) || !kernel_ready()) {
        return NULL;
    }
    PyObject *prices = args[4], *learn_price = args[5], *sizes = args[6], *learn_size = args[7];
    if (!PyDict_Check(prices) || !PyDict_Check(sizes)) {
        PyErr_SetString(PyExc_TypeError, "known prices and sizes must be dicts");
        return NULL;
    }
    int sizes_direct = plain_non_negative(learn_size);
    if (sizes_direct < 0) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "items must be iterable");
    if (seq == NULL) {
        return NULL;
    }
    PyObject *grouped = PyDict_New(), *out = NULL;
    if (grouped == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        int grouped_ok = group_item(grouped, item, prices, learn_price, sizes, learn_size,
                                    sizes_direct);
        Py_DECREF(item);
        if (grouped_ok < 0) {
            goto slow;
        }
    }
    out = PyList_New(0);
    if (out == NULL) {
        goto fail;
    }
    Py_ssize_t pos = 0;
    PyObject *asset, *entry;
    while (PyDict_Next(grouped, &pos, &asset, &entry)) {
        PyObject *change = change_of(asset, entry, args);
        if (change == NULL || PyList_Append(out, change) < 0) {
            Py_XDECREF(change);
            goto slow;
        }
        Py_DECREF(change);
    }
    Py_DECREF(grouped);
    Py_DECREF(seq);
    return out;
slow:
    /* Whatever went wrong (an Invalid number, an odd side or type), the Python path
     * reads the message again: the memos only ever learned valid numbers. What is not
     * an Exception (KeyboardInterrupt, SystemExit) goes on up. */
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) {
        Py_XDECREF(out);
        goto fail;
    }
    PyErr_Clear();
    Py_XDECREF(out);
    Py_DECREF(grouped);
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(grouped);
    Py_DECREF(seq);
    return NULL;
}

PyDoc_STRVAR(setup_doc,
"setup(keys, sizes, checked_memo, price_key, size, checked, canon, level_type,\n"
"      unknown_level, invalid_level, crossed) -> None\n\n"
"Bind the memos, fallbacks and result values the loops use (book.py calls it once).");

static PyObject *
k_setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_count("setup", nargs, 11)) {
        return NULL;
    }
    if (!PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) ||
        !PyDict_CheckExact(args[2]) || !PyType_Check(args[7])) {
        PyErr_SetString(PyExc_TypeError, "setup: memos must be dicts and level_type a type");
        return NULL;
    }
    PyObject **slots[] = {&g_keys, &g_sizes, &g_checked_memo, &g_price_key, &g_size,
                          &g_checked, &g_canon, (PyObject **)&g_level, &g_unknown, &g_invalid,
                          &g_crossed};
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_XSETREF(*slots[i], Py_NewRef(args[i]));
    }
    g_price_off = slot_offset(g_level, "price");
    g_size_off = slot_offset(g_level, "size");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(setup_numbers_doc,
"setup_numbers(learn, non_negative) -> None\n\n"
"Bind checks.Numbers.learn and the non-negative rule, whose work levels() may do in C.");

static PyObject *
k_setup_numbers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_count("setup_numbers", nargs, 2)) {
        return NULL;
    }
    Py_XSETREF(g_learn, Py_NewRef(args[0]));
    Py_XSETREF(g_non_negative, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyMethodDef kernel_methods[] = {
    {"setup_numbers", (PyCFunction)(void (*)(void))k_setup_numbers, METH_FASTCALL,
     setup_numbers_doc},
    {"check", (PyCFunction)k_check, METH_O, check_doc},
    {"setup", (PyCFunction)(void (*)(void))k_setup, METH_FASTCALL, setup_doc},
    {"apply", (PyCFunction)(void (*)(void))k_apply, METH_FASTCALL, apply_doc},
    {"apply_sides", (PyCFunction)(void (*)(void))k_apply_sides, METH_FASTCALL, apply_sides_doc},
    {"load", (PyCFunction)(void (*)(void))k_load, METH_FASTCALL, load_doc},
    {"levels", (PyCFunction)(void (*)(void))k_levels, METH_FASTCALL, levels_doc},
    {"price_changes", (PyCFunction)(void (*)(void))k_price_changes, METH_FASTCALL,
     price_changes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT,
    "venuefeed._kernel",
    "The order book's per-frame loops in C (see venuefeed.kernel).",
    -1,
    kernel_methods,
};

PyMODINIT_FUNC
PyInit__kernel(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_price, "price"}, {&s_size, "size"}, {&s_levels, "levels"}, {&s_keys, "keys"},
        {&s_sign, "_sign"}, {&s_strip, "strip"}, {&s_zero_dot, "0."}, {&s_zero, "0"},
        {&s_known, "known"}, {&s_limit, "limit"}, {&s_rule, "rule"}, {&s_empty, ""},
        {&s_asset_id, "asset_id"}, {&s_side, "side"}, {&s_hash, "hash"},
        {&s_best_bid, "best_bid"}, {&s_best_ask, "best_ask"}, {&s_buy, "BUY"}, {&s_sell, "SELL"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL &&
            (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL) {
            return NULL;
        }
    }
    s_delta_kwnames = Py_BuildValue("(sssssss)", "venue", "instrument", "ts_venue", "ts_recv",
                                    "bids", "asks", "checksum");
    if (s_delta_kwnames == NULL) {
        return NULL;
    }
    return PyModule_Create(&kernel_module);
}
