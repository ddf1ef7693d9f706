/* The statistics hot path in C: ``CollectorCore.response``.

   ``dibble.stats._collector`` holds the reference implementation
   (``_PyCore.response``) and the rest of the collector; this file is the
   same fast way, step for step, without the interpreter.  Every response of
   the server passes here: the Python version's 150 bytecodes cost a
   plaintext request about 7,000 instructions, this about 2,000.  What the
   fast way leaves out (bots, known users, first sight of a route,
   arguments in the request-log row) it hands to the Python methods,
   exactly where the Python version does.

   It also has the request log's row encoder (``plain_json``), the same
   text as ``_requestlog._plain_json`` in one pass.

   The core keeps the fast way's state in C fields, shown to Python as the
   attributes the Python version has (``clock``, ``_day_end``, ...), so the
   rest of the collector reads and sets them as before.  Requests and route
   counters are read through their attributes, straight from their slots
   where they have them (see ``Slot``).

   Threads: the request-log buffer (``plain_rows``) is emptied by another
   thread.  Its five values per row are added with no Python code running in
   between (nothing here releases the GIL), so that thread sees a row whole
   or not at all, as the Python version's one ``list += tuple``.

   Built when a C compiler is at hand (optional in setup.py); without it,
   or with ``DIBBLE_NO_EXTENSIONS`` set, the collector uses the Python
   version.  The tests run both. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <string.h>

/* See MICROS in _collector.py: 2**52. */
#define MICROS 4503599627370496.0
/* The values of one plain request-log row (PLAIN_WIDTH in _collector.py). */
#define PLAIN_WIDTH 5

typedef struct {
    PyObject_HEAD
    PyObject *clock;
    PyObject *by_route;
    PyObject *agents;
    PyObject *detector;
    PyObject *last_agent;
    PyObject *plain_rows;
    double day_end;
    double origin;
    Py_ssize_t max_plain;
    Py_ssize_t dropped;
    char counting;
    char last_bot;
} CoreObject;

/* Reading an attribute kept in a slot (``__slots__``), as the interpreter's own
   specialised LOAD_ATTR does: the generic lookup costs about 170 instructions, and
   the fast way reads ten attributes a response.  The first read of a type finds
   the slot's member descriptor and remembers the type (and its version, which
   changes when the class is changed) with the slot's offset; later reads of an
   object of that type take the value at that offset.  Anything else (another
   type, an empty slot, not a slot at all) takes ``PyObject_GetAttr``. */
typedef struct {
    const char *text;
    PyObject *name;
    PyTypeObject *type;  /* strong reference: the address cannot be reused */
    unsigned int version;
    Py_ssize_t offset;
} Slot;

static Slot slot_route = {"route"}, slot_raw_headers = {"raw_headers"};
static Slot slot_session_state = {"session_state"}, slot_started = {"started"};
static Slot slot_method = {"method"}, slot_target = {"target"}, slot_params = {"_params"};
static Slot slot_counts_method = {"method"}, slot_status = {"status"}, slot_low = {"low"};
static Slot slot_high = {"high"}, slot_entry = {"entry"};
static Slot *slots[] = {
    &slot_route, &slot_raw_headers, &slot_session_state, &slot_started, &slot_method,
    &slot_target, &slot_params, &slot_counts_method, &slot_status, &slot_low, &slot_high,
    &slot_entry,
};

static PyObject *
read_slow(PyObject *obj, Slot *slot)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (type->tp_getattro == PyObject_GenericGetAttr
        && PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) {
        PyObject *found = _PyType_Lookup(type, slot->name);  /* borrowed */
        if (found != NULL && Py_IS_TYPE(found, &PyMemberDescr_Type)) {
            PyMemberDef *member = ((PyMemberDescrObject *)found)->d_member;
            if (member->type == T_OBJECT_EX) {
                Py_INCREF(type);
                Py_XSETREF(slot->type, type);
                slot->version = type->tp_version_tag;
                slot->offset = member->offset;
            }
        }
    }
    return PyObject_GetAttr(obj, slot->name);
}

/* ``obj.<slot's name>``: a new reference, or NULL with an error set. */
static inline PyObject *
slot_read(PyObject *obj, Slot *slot)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (type == slot->type && type->tp_version_tag == slot->version
        && PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) {
        PyObject *value = *(PyObject **)((char *)obj + slot->offset);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return read_slow(obj, slot);
}

/* Interned names and constants, made once at import. */
static PyObject *str_entry_for, *str_new_day, *str_response;
static PyObject *str_log, *str_failed, *str_agent_is_bot, *str_get;
static PyObject *one;
static PyObject *user_agent;  /* b"user-agent" */
static PyObject *nobody;      /* (None, None, None, None): _NOBODY */

static int
missing(const char *name)
{
    PyErr_Format(PyExc_AttributeError, "'CollectorCore' object has no attribute '%s'", name);
    return -1;
}

/* ``mapping.get(key)``: a new reference, or NULL, with an error set or not (missing). */
static PyObject *
get(PyObject *mapping, PyObject *key)
{
    PyObject *value;
    if (PyDict_CheckExact(mapping)) {
        value = PyDict_GetItemWithError(mapping, key);
        Py_XINCREF(value);
        return value;
    }
    value = PyObject_CallMethodOneArg(mapping, str_get, key);
    if (value == Py_None) {
        Py_CLEAR(value);
    }
    return value;
}

/* ``a + b``, for two ints of a machine word without the generic number protocol. */
static PyObject *
add(PyObject *a, PyObject *b)
{
    if (PyLong_CheckExact(a) && PyLong_CheckExact(b)) {
        int overflow_a, overflow_b;
        long long x = PyLong_AsLongLongAndOverflow(a, &overflow_a);
        long long y = PyLong_AsLongLongAndOverflow(b, &overflow_b);
        long long sum;
        if (!overflow_a && !overflow_b && !__builtin_add_overflow(x, y, &sum)) {
            return PyLong_FromLongLong(sum);
        }
    }
    return PyNumber_InPlaceAdd(a, b);
}

/* ``entry[index] += amount`` */
static int
add_to(PyObject *entry, Py_ssize_t index, PyObject *amount)
{
    PyObject *old, *new;
    if (PyList_CheckExact(entry) && PyList_GET_SIZE(entry) > index) {
        old = PyList_GET_ITEM(entry, index);
        Py_INCREF(old);  /* the addition may run Python code that changes the list */
        new = add(old, amount);
        Py_DECREF(old);
        if (new == NULL) {
            return -1;
        }
        /* Re-read: the addition may have run Python code that changed the list. */
        if (PyList_GET_SIZE(entry) <= index) {
            Py_DECREF(new);
            PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
            return -1;
        }
        old = PyList_GET_ITEM(entry, index);
        PyList_SET_ITEM(entry, index, new);
        Py_DECREF(old);
        return 0;
    }
    PyObject *key = PyLong_FromSsize_t(index);
    if (key == NULL) {
        return -1;
    }
    old = PyObject_GetItem(entry, key);
    if (old == NULL) {
        Py_DECREF(key);
        return -1;
    }
    new = add(old, amount);
    Py_DECREF(old);
    if (new == NULL) {
        Py_DECREF(key);
        return -1;
    }
    int result = PyObject_SetItem(entry, key, new);
    Py_DECREF(new);
    Py_DECREF(key);
    return result;
}

/* The value of the request's first User-Agent field (new reference), or None. */
static PyObject *
find_agent(PyObject *request)
{
    PyObject *headers = slot_read(request, &slot_raw_headers);
    if (headers == NULL) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(headers, "raw_headers is not a sequence");
    Py_DECREF(headers);
    if (seq == NULL) {
        return NULL;
    }
    PyObject *agent = NULL;
    for (Py_ssize_t i = 0; agent == NULL && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError, "a raw header is not a (field, value) pair");
            Py_DECREF(seq);
            return NULL;
        }
        PyObject *field = PyTuple_GET_ITEM(pair, 0);
        int same;
        Py_INCREF(pair);  /* a comparison may run Python code */
        if (PyBytes_CheckExact(field)) {
            same = PyBytes_GET_SIZE(field) == 10
                   && memcmp(PyBytes_AS_STRING(field), "user-agent", 10) == 0;
        }
        else {
            same = PyObject_RichCompareBool(field, user_agent, Py_EQ);
        }
        if (same > 0) {
            agent = PyTuple_GET_ITEM(pair, 1);
            Py_INCREF(agent);
        }
        Py_DECREF(pair);
        if (same < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    if (agent == NULL) {
        agent = Py_None;
        Py_INCREF(agent);
    }
    return agent;
}

/* Whether ``agent`` is a bot's, remembered for the next response: 1, 0 or -1. */
static int
is_bot(CoreObject *self, PyObject *agent)
{
    PyObject *last = self->last_agent;
    if (last == NULL) {
        return missing("_last_agent");
    }
    if (agent == last) {
        return self->last_bot;
    }
    int same;
    if (PyBytes_CheckExact(agent) && PyBytes_CheckExact(last)) {
        Py_ssize_t size = PyBytes_GET_SIZE(agent);
        same = size == PyBytes_GET_SIZE(last)
               && memcmp(PyBytes_AS_STRING(agent), PyBytes_AS_STRING(last), size) == 0;
    }
    else {
        Py_INCREF(last);  /* a comparison may run Python code */
        same = PyObject_RichCompareBool(agent, last, Py_EQ);
        Py_DECREF(last);
    }
    if (same < 0) {
        return -1;
    }
    if (same) {
        return self->last_bot;
    }
    if (self->agents == NULL) {
        return missing("_agents");
    }
    PyObject *verdict = get(self->agents, agent);
    if (verdict == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        if (self->detector == NULL) {
            return missing("detector");
        }
        verdict = PyObject_CallMethodOneArg(self->detector, str_agent_is_bot, agent);
        if (verdict == NULL) {
            return -1;
        }
    }
    int bot = PyObject_IsTrue(verdict);
    Py_DECREF(verdict);
    if (bot < 0) {
        return -1;
    }
    Py_INCREF(agent);
    Py_SETREF(self->last_agent, agent);
    self->last_bot = (char)bot;
    return bot;
}

/* ``rows += (created, request.method, target, duration, status)``: 1, or 0 with an error. */
static int
append_row(PyObject *rows, PyObject *request, PyObject *target, PyObject *status,
           double created, double duration)
{
    PyObject *method = slot_read(request, &slot_method);
    if (method == NULL) {
        return 0;
    }
    PyObject *values[PLAIN_WIDTH] = {
        PyFloat_FromDouble(created), method, target, PyFloat_FromDouble(duration), status,
    };
    int ok = values[0] != NULL && values[3] != NULL;
    if (ok && PyList_CheckExact(rows)) {
        /* No Python code runs between these appends (nor can another thread): the
           writer sees the row whole or not at all, as with the Python version's
           ``rows += row``.  A failed append takes back the row's first values. */
        Py_ssize_t start = PyList_GET_SIZE(rows);
        for (int i = 0; ok && i < PLAIN_WIDTH; i++) {
            ok = PyList_Append(rows, values[i]) == 0;
        }
        if (!ok) {
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            PyList_SetSlice(rows, start, PyList_GET_SIZE(rows), NULL);
            PyErr_Restore(type, value, traceback);
        }
    }
    else if (ok) {
        PyObject *row = PyTuple_Pack(PLAIN_WIDTH, values[0], method, target, values[3], status);
        PyObject *grown = row == NULL ? NULL : PySequence_InPlaceConcat(rows, row);
        ok = grown != NULL;
        Py_XDECREF(grown);
        Py_XDECREF(row);
    }
    Py_DECREF(method);
    Py_XDECREF(values[0]);
    Py_XDECREF(values[3]);
    return ok;
}

/* ``self._response(client, request, status, size, now)`` */
static int
call_slow(CoreObject *self, PyObject *client, PyObject *request, PyObject *status,
          PyObject *size, PyObject *now)
{
    PyObject *args[] = {(PyObject *)self, client, request, status, size, now};
    PyObject *result = PyObject_VectorcallMethod(
        str_response, args, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* The counter of ``counts`` this response goes to (new reference), or NULL with an
   error set: the last one when the method, status and latency bucket match its,
   else ``counts.entry_for(method, status, elapsed)``. */
static PyObject *
entry_of(PyObject *counts, PyObject *request, PyObject *status, PyObject *elapsed,
         double seconds)
{
    PyObject *method = slot_read(request, &slot_method);
    if (method == NULL) {
        return NULL;
    }
    PyObject *last_method = slot_read(counts, &slot_counts_method);
    if (last_method == NULL) {
        Py_DECREF(method);
        return NULL;
    }
    int same = last_method == method;
    Py_DECREF(last_method);
    if (same) {
        PyObject *last_status = slot_read(counts, &slot_status);
        if (last_status == NULL) {
            Py_DECREF(method);
            return NULL;
        }
        same = PyObject_RichCompareBool(status, last_status, Py_EQ);
        Py_DECREF(last_status);
    }
    for (int bound = 0; same > 0 && bound < 2; bound++) {  /* low <= elapsed < high */
        PyObject *value = slot_read(counts, bound ? &slot_high : &slot_low);
        double limit = value == NULL ? -1.0 : PyFloat_AsDouble(value);
        Py_XDECREF(value);
        if (limit == -1.0 && PyErr_Occurred()) {
            same = -1;
        }
        else {
            same = bound ? seconds < limit : limit <= seconds;
        }
    }
    PyObject *entry = NULL;
    if (same > 0) {
        entry = slot_read(counts, &slot_entry);
    }
    else if (same == 0) {
        PyObject *args[] = {counts, method, status, elapsed};
        entry = PyObject_VectorcallMethod(
            str_entry_for, args, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_DECREF(method);
    return entry;
}

/* The request-log row of a response counted the fast way: five values added to
   ``rows``, or ``_log`` for a row with arguments.  0, or -1 with an error set. */
static int
log_row(CoreObject *self, PyObject *rows, PyObject *request, PyObject *status,
        PyObject *now, PyObject *elapsed, double when, double seconds)
{
    PyObject *target = slot_read(request, &slot_target);
    if (target == NULL) {
        return -1;
    }
    PyObject *params = slot_read(request, &slot_params);
    int query = -1;
    if (params != NULL) {
        if (params != Py_None) {
            query = 1;
        }
        else if (PyBytes_CheckExact(target)) {
            query = memchr(PyBytes_AS_STRING(target), '?', PyBytes_GET_SIZE(target)) != NULL;
        }
        else {
            PyObject *mark = PyLong_FromLong('?');
            if (mark != NULL) {
                query = PySequence_Contains(target, mark);
                Py_DECREF(mark);
            }
        }
        Py_DECREF(params);
    }
    int ok = 0;
    if (query > 0) {
        PyObject *args[] = {(PyObject *)self, request, status, now, elapsed, nobody};
        PyObject *logged = PyObject_VectorcallMethod(
            str_log, args, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        ok = logged != NULL;
        Py_XDECREF(logged);
    }
    else if (query == 0) {
        Py_ssize_t waiting = PyObject_Length(rows);
        if (waiting >= self->max_plain) {
            ok = waiting >= 0;
            self->dropped += ok;
        }
        else if (waiting >= 0) {
            ok = append_row(rows, request, target, status, when * 1e6 + self->origin,
                            seconds * 1e6 + MICROS);
        }
    }
    Py_DECREF(target);
    return ok ? 0 : -1;
}

/* Count one response the fast way, or hand it to ``_response``: 0, or -1 with an error set. */
static int
count_response(CoreObject *self, PyObject *client, PyObject *request, PyObject *status,
               PyObject *size, PyObject *now, double when)
{
    PyObject *route = slot_read(request, &slot_route);
    if (route == NULL) {
        return -1;
    }
    if (self->by_route == NULL) {
        Py_DECREF(route);
        return missing("_by_route");
    }
    PyObject *counts = get(self->by_route, route);
    Py_DECREF(route);
    if (counts == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        /* A route seen for the first time, or the slow way on. */
        return call_slow(self, client, request, status, size, now);
    }

    int result = -1;
    PyObject *elapsed = NULL;
    PyObject *agent = find_agent(request);
    int bot = agent == NULL ? -1 : is_bot(self, agent);
    Py_XDECREF(agent);
    if (bot < 0) {
        goto done;
    }
    if (!bot) {
        PyObject *state = slot_read(request, &slot_session_state);
        if (state == NULL) {
            goto done;
        }
        Py_DECREF(state);
        bot = state != Py_None;  /* a request with sessions may have a user: the slow way */
    }
    if (bot) {
        result = call_slow(self, client, request, status, size, now);
        goto done;
    }

    PyObject *started = slot_read(request, &slot_started);
    if (started == NULL) {
        goto done;
    }
    if (PyFloat_CheckExact(now) && PyFloat_CheckExact(started)) {
        elapsed = PyFloat_FromDouble(PyFloat_AS_DOUBLE(now) - PyFloat_AS_DOUBLE(started));
    }
    else {
        elapsed = PyNumber_Subtract(now, started);
    }
    Py_DECREF(started);
    if (elapsed == NULL) {
        goto done;
    }
    double seconds = PyFloat_AsDouble(elapsed);
    if (seconds == -1.0 && PyErr_Occurred()) {
        goto done;
    }

    if (self->counting) {
        PyObject *entry = entry_of(counts, request, status, elapsed, seconds);
        if (entry == NULL) {
            goto done;
        }
        int added = add_to(entry, 0, one);
        if (added == 0) {
            added = add_to(entry, 1, size);
        }
        Py_DECREF(entry);
        if (added < 0) {
            goto done;
        }
    }

    PyObject *rows = self->plain_rows;
    if (rows == NULL) {
        missing("plain_rows");
        goto done;
    }
    if (rows != Py_None) {
        Py_INCREF(rows);
        int logged = log_row(self, rows, request, status, now, elapsed, when, seconds);
        Py_DECREF(rows);
        if (logged < 0) {
            goto done;
        }
    }
    result = 0;

done:
    Py_XDECREF(elapsed);
    Py_DECREF(counts);
    return result;
}

static PyObject *
core_response(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "response() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *client = args[0], *request = args[1], *status = args[2], *size = args[3];
    int result = -1;
    PyObject *now = NULL, *clock = self->clock;
    if (clock == NULL) {
        missing("clock");
    }
    else {
        Py_INCREF(clock);
        now = PyObject_CallNoArgs(clock);
        Py_DECREF(clock);
    }
    if (now != NULL) {
        double when = PyFloat_AsDouble(now);
        if (!(when == -1.0 && PyErr_Occurred())) {
            result = 0;
            if (when >= self->day_end) {
                PyObject *day = PyObject_CallMethodOneArg((PyObject *)self, str_new_day, now);
                result = day == NULL ? -1 : 0;
                Py_XDECREF(day);
            }
            if (result == 0) {
                result = count_response(self, client, request, status, size, now, when);
            }
        }
        Py_DECREF(now);
    }
    if (result == 0) {
        Py_RETURN_NONE;
    }
    /* Statistics must never break serving: ``except Exception as exc: self._failed(exc)``. */
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    PyObject *logged = PyObject_CallMethodOneArg((PyObject *)self, str_failed, value);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    if (logged == NULL) {
        return NULL;
    }
    Py_DECREF(logged);
    Py_RETURN_NONE;
}

static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    CoreObject *self = (CoreObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->day_end = -INFINITY;
    Py_INCREF(Py_None);
    self->last_agent = Py_None;
    Py_INCREF(Py_None);
    self->plain_rows = Py_None;
    return (PyObject *)self;
}

static int
core_traverse(CoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->clock);
    Py_VISIT(self->by_route);
    Py_VISIT(self->agents);
    Py_VISIT(self->detector);
    Py_VISIT(self->last_agent);
    Py_VISIT(self->plain_rows);
    return 0;
}

static int
core_clear(CoreObject *self)
{
    Py_CLEAR(self->clock);
    Py_CLEAR(self->by_route);
    Py_CLEAR(self->agents);
    Py_CLEAR(self->detector);
    Py_CLEAR(self->last_agent);
    Py_CLEAR(self->plain_rows);
    return 0;
}

static void
core_dealloc(CoreObject *self)
{
    PyObject_GC_UnTrack(self);
    core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef core_methods[] = {
    {"response", (PyCFunction)(void (*)(void))core_response, METH_FASTCALL,
     "Count one finished response (called by the protocol, on the event loop)."},
    {NULL},
};

static PyMemberDef core_members[] = {
    {"clock", T_OBJECT_EX, offsetof(CoreObject, clock), 0, NULL},
    {"_by_route", T_OBJECT_EX, offsetof(CoreObject, by_route), 0, NULL},
    {"_agents", T_OBJECT_EX, offsetof(CoreObject, agents), 0, NULL},
    {"detector", T_OBJECT_EX, offsetof(CoreObject, detector), 0, NULL},
    {"_last_agent", T_OBJECT_EX, offsetof(CoreObject, last_agent), 0, NULL},
    {"plain_rows", T_OBJECT_EX, offsetof(CoreObject, plain_rows), 0, NULL},
    {"_day_end", T_DOUBLE, offsetof(CoreObject, day_end), 0, NULL},
    {"_origin", T_DOUBLE, offsetof(CoreObject, origin), 0, NULL},
    {"_max_plain", T_PYSSIZET, offsetof(CoreObject, max_plain), 0, NULL},
    {"dropped", T_PYSSIZET, offsetof(CoreObject, dropped), 0, NULL},
    {"counting", T_BOOL, offsetof(CoreObject, counting), 0, NULL},
    {"_last_bot", T_BOOL, offsetof(CoreObject, last_bot), 0, NULL},
    {NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dibble.stats._speedups.CollectorCore",
    .tp_doc = PyDoc_STR("The collector's fast way and its state (see _collector._PyCore)."),
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = core_new,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_methods = core_methods,
    .tp_members = core_members,
};


/* --- the request log's rows as JSON (``_requestlog._plain_json``) -------------------- */

/* Whether a byte may stand in a row string as it is: not a control character,
   a space (which ends the target), a quote or a backslash. */
static inline int
safe(unsigned char c)
{
    return c > ' ' && c != '"' && c != '\\';
}

static const char HEX[] = "0123456789abcdef";

/* The 16 hex digits of a double's big-endian bytes, if they start with 433
   (MICROS + a whole count below 2**52: see MICROS in _collector.py). */
static int
hex_number(PyObject *value, char *out)
{
    double number = PyFloat_AsDouble(value);
    if (number == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    unsigned long long bits;
    memcpy(&bits, &number, sizeof bits);
    if (bits >> 52 != 0x433) {
        return 0;
    }
    for (int i = 15; i >= 0; i--) {
        out[i] = HEX[bits & 15];
        bits >>= 4;
    }
    return 1;
}

/* The same text as ``_requestlog._plain_json(values)``, made in one pass, or None
   where this cannot tell (the Python version then decides). */
static PyObject *
plain_json(PyObject *module, PyObject *values)
{
    if (!PyList_Check(values)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t rows = PyList_GET_SIZE(values) / PLAIN_WIDTH;
    if (rows == 0) {
        Py_RETURN_NONE;
    }
    /* First pass: check every row and add up the length. */
    Py_ssize_t length = 2 + 2 + 3 * (rows - 1);  /* [" "] and "," between rows */
    unsigned char widest = 0;
    char digits[16];
    for (Py_ssize_t row = 0; row < rows; row++) {
        PyObject **item = &PyList_GET_ITEM(values, row * PLAIN_WIDTH);
        PyObject *method = item[1], *target = item[2], *status = item[4];
        if (!hex_number(item[0], digits) || !hex_number(item[3], digits)) {
            Py_RETURN_NONE;
        }
        if (!PyBytes_Check(target) || !PyUnicode_Check(method) || !PyLong_CheckExact(status)) {
            Py_RETURN_NONE;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(method) < 0) {  /* a legacy string (before 3.12 only) */
            PyErr_Clear();
            Py_RETURN_NONE;
        }
#endif
        if (PyUnicode_KIND(method) != PyUnicode_1BYTE_KIND || PyUnicode_GET_LENGTH(method) == 0) {
            Py_RETURN_NONE;
        }
        long code = PyLong_AsLong(status);
        if (code < 100 || code > 999) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(target);
        for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(target); i++) {
            if (!safe(bytes[i])) {
                Py_RETURN_NONE;
            }
            widest |= bytes[i];
        }
        const Py_UCS1 *name = PyUnicode_1BYTE_DATA(method);
        for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(method); i++) {
            if (!safe(name[i])) {
                Py_RETURN_NONE;
            }
            widest |= name[i];
        }
        length += 32 + PyBytes_GET_SIZE(target) + 1 + PyUnicode_GET_LENGTH(method) + 3;
    }
    /* Second pass: write it (ASCII unless a target has a byte above 127: Latin-1). */
    PyObject *text = PyUnicode_New(length, widest & 0x80 ? 255 : 127);
    if (text == NULL) {
        return NULL;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    *out++ = '[';
    *out++ = '"';
    for (Py_ssize_t row = 0; row < rows; row++) {
        PyObject **item = &PyList_GET_ITEM(values, row * PLAIN_WIDTH);
        PyObject *method = item[1], *target = item[2];
        if (row) {
            memcpy(out, "\",\"", 3);
            out += 3;
        }
        hex_number(item[0], (char *)out);
        hex_number(item[3], (char *)out + 16);
        out += 32;
        memcpy(out, PyBytes_AS_STRING(target), PyBytes_GET_SIZE(target));
        out += PyBytes_GET_SIZE(target);
        *out++ = ' ';
        memcpy(out, PyUnicode_1BYTE_DATA(method), PyUnicode_GET_LENGTH(method));
        out += PyUnicode_GET_LENGTH(method);
        long code = PyLong_AsLong(item[4]);
        *out++ = (Py_UCS1)('0' + code / 100);
        *out++ = (Py_UCS1)('0' + code / 10 % 10);
        *out++ = (Py_UCS1)('0' + code % 10);
    }
    *out++ = '"';
    *out++ = ']';
    return text;
}

static PyMethodDef module_methods[] = {
    {"plain_json", (PyCFunction)plain_json, METH_O,
     "The request log's rows of anonymous requests as JSON (see _requestlog._plain_json)."},
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "dibble.stats._speedups",
    .m_doc = "The statistics collector's hot path in C (see _collector.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
intern(PyObject **name, const char *text)
{
    *name = PyUnicode_InternFromString(text);
    return *name == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
        if (intern(&slots[i]->name, slots[i]->text) < 0) {
            return NULL;
        }
    }
    if (intern(&str_entry_for, "entry_for") < 0 || intern(&str_new_day, "new_day") < 0
        || intern(&str_response, "_response") < 0 || intern(&str_log, "_log") < 0
        || intern(&str_failed, "_failed") < 0
        || intern(&str_agent_is_bot, "agent_is_bot") < 0 || intern(&str_get, "get") < 0) {
        return NULL;
    }
    user_agent = PyBytes_FromString("user-agent");
    nobody = PyTuple_Pack(4, Py_None, Py_None, Py_None, Py_None);
    one = PyLong_FromLong(1);
    if (user_agent == NULL || nobody == NULL || one == NULL) {
        return NULL;
    }
    if (PyType_Ready(&CoreType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(module, "CollectorCore", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
