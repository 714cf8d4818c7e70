// A driver for the official Supabase JavaScript clients, for tests/server/realtime/test_js_clients.py.
//
// Reads commands (one JSON object a line) on stdin and writes what happens (one JSON object a
// line) on stdout. Clients are built with default options: `createClient(url, key)` or
// `new RealtimeClient(url + '/realtime/v1', { params: { apikey } })`, plus `vsn` only when a
// test asks for 1.0.0.
import { createInterface } from 'node:readline'
import { RealtimeClient } from '@supabase/realtime-js'
import { createClient } from '@supabase/supabase-js'

let client = null // a SupabaseClient or a RealtimeClient
let realtime = null // the RealtimeClient either way
const channels = new Map()

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

function plain(value) {
  // ArrayBuffers do not survive JSON.stringify: show them as byte arrays.
  if (value instanceof ArrayBuffer) return { bytes: Array.from(new Uint8Array(value)) }
  if (Array.isArray(value)) return value.map(plain)
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
  }
  return value
}

const ops = {
  connect({ lib, url, key, vsn }) {
    if (lib === 'supabase-js') {
      client = vsn ? createClient(url, key, { realtime: { vsn } }) : createClient(url, key)
      realtime = client.realtime
    } else {
      const options = { params: { apikey: key } }
      if (vsn) options.vsn = vsn
      client = new RealtimeClient(`${url}/realtime/v1`, options)
      realtime = client
    }
    return { vsn: realtime.vsn }
  },

  async setAuth({ token }) {
    await realtime.setAuth(token)
    return {}
  },

  channel({ name, topic, config = {}, pg = [], broadcast = [], presence = false, system = false }) {
    const channel = (client.channel ? client : realtime).channel(topic, { config })
    channels.set(name, channel)
    for (const binding of pg) {
      channel.on('postgres_changes', binding, (payload) => emit({ ev: 'pg', channel: name, payload }))
    }
    for (const event of broadcast) {
      channel.on('broadcast', { event }, (payload) =>
        emit({ ev: 'broadcast', channel: name, payload: plain(payload) }),
      )
    }
    if (presence) {
      for (const kind of ['sync', 'join', 'leave']) {
        channel.on('presence', { event: kind }, (info) =>
          emit({
            ev: 'presence',
            channel: name,
            kind,
            key: info?.key ?? null,
            state: channel.presenceState(),
          }),
        )
      }
    }
    if (system) {
      channel.on('system', {}, (payload) => emit({ ev: 'system', channel: name, payload }))
    }
    channel.subscribe((status, err) =>
      emit({ ev: 'status', channel: name, status, error: err ? String(err.message ?? err) : null }),
    )
    return {}
  },

  async send({ name, event, payload, bytes }) {
    const body = bytes ? new Uint8Array(bytes).buffer : payload
    const result = await channels.get(name).send({ type: 'broadcast', event, payload: body })
    return { result }
  },

  async httpSend({ name, event, payload, bytes }) {
    const body = bytes ? new Uint8Array(bytes) : payload
    try {
      return { result: await channels.get(name).httpSend(event, body) }
    } catch (error) {
      return { error: String(error.message ?? error) }
    }
  },

  async track({ name, payload }) {
    return { result: await channels.get(name).track(payload) }
  },

  async untrack({ name }) {
    return { result: await channels.get(name).untrack() }
  },

  async leave({ name }) {
    const result = await (client.removeChannel ? client : realtime).removeChannel(channels.get(name))
    channels.delete(name)
    return { result }
  },

  async rest({ table, chain, head, count, accept }) {
    // chain: [[method, ...args], ...] on supabase.from(table), e.g. [["select", "*, id"], ["eq", "status", "x"]]
    let query = client.from(table)
    for (const [method, ...args] of chain) {
      if (method === 'select' && (head || count)) {
        query = query.select(args[0], { head: !!head, count })
      } else {
        query = query[method](...args)
      }
    }
    if (accept === 'csv') query = query.csv()
    const { data, error, count: total, status } = await query
    return { data, error, count: total ?? null, status }
  },

  async rpc({ fn, args }) {
    const { data, error, status } = await client.rpc(fn, args)
    return { data, error, status }
  },

  async exit() {
    await realtime?.disconnect()
    setTimeout(() => process.exit(0), 50)
    return {}
  },
}

const lines = createInterface({ input: process.stdin })
let queue = Promise.resolve()
lines.on('line', (line) => {
  const command = JSON.parse(line)
  queue = queue.then(async () => {
    try {
      const result = await ops[command.op](command)
      emit({ ev: 'done', op: command.op, id: command.id, ...result })
    } catch (error) {
      emit({ ev: 'done', op: command.op, id: command.id, failed: String(error?.stack ?? error) })
    }
  })
})
lines.on('close', () => queue.then(() => ops.exit()))
