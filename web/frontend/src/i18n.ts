// Chinese first (zh-CN), English on request; the choice is remembered per browser.
export type Lang = "zh" | "en";

const zh = {
  title: "有呼必应 · 指挥中心",
  login: "登录",
  username: "用户名",
  password: "密码",
  loginFailed: "登录失败：",
  logout: "退出",
  map: "态势地图",
  stats: "统计分析",
  queue: "待办队列",
  live: "实时",
  connecting: "连接中…",
  reconnecting: "重连中…",
  all: "全部",
  status: "状态",
  risk: "时限",
  source: "来源",
  search: "搜索标题/地址",
  overdue: "已超时",
  soon: "即将到期",
  ok: "时限内",
  noDeadline: "无时限",
  left: "剩余",
  late: "超时",
  cases: "件",
  close: "关闭",
  timeline: "处置过程",
  sources: "来源记录",
  details: "案件信息",
  actions: "操作",
  category: "类别",
  priority: "优先级",
  unit: "责任单位",
  address: "地址",
  area: "区域",
  deadline: "时限",
  reported: "上报时间",
  attention: "待处理原因",
  reason: "原因",
  returnReason: "回退类型",
  mergeInto: "合并到案件号",
  unitOptional: "派遣单位（空=按权责清单）",
  submit: "提交",
  done: "已完成",
  failed: "失败：",
  by: "维度",
  period: "周期",
  from: "起",
  to: "止",
  load: "查询",
  exportCsv: "导出 CSV",
  exportXlsx: "导出 XLSX",
  noRows: "无数据",
  basemapNone: "无底图（离线）",
  webglMissing: "此浏览器无法显示地图（WebGL 不可用）",
  inspectors: "网格员",
  truncated: "（仅显示前若干件）",
};
type Dict = typeof zh;

const en: Dict = {
  title: "Youhu · Command Center",
  login: "Log in",
  username: "Username",
  password: "Password",
  loginFailed: "Login failed: ",
  logout: "Log out",
  map: "Live map",
  stats: "Statistics",
  queue: "Queue",
  live: "Live",
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  all: "All",
  status: "Status",
  risk: "Deadline",
  source: "Source",
  search: "Search title/address",
  overdue: "Overdue",
  soon: "Due soon",
  ok: "On time",
  noDeadline: "No deadline",
  left: "left",
  late: "late",
  cases: "cases",
  close: "Close",
  timeline: "Timeline",
  sources: "Source records",
  details: "Case",
  actions: "Actions",
  category: "Category",
  priority: "Priority",
  unit: "Unit",
  address: "Address",
  area: "Area",
  deadline: "Deadline",
  reported: "Reported",
  attention: "Waiting for",
  reason: "Reason",
  returnReason: "Return kind",
  mergeInto: "Merge into case #",
  unitOptional: "Unit (empty = responsibility matrix)",
  submit: "Submit",
  done: "Done",
  failed: "Failed: ",
  by: "By",
  period: "Period",
  from: "From",
  to: "To",
  load: "Load",
  exportCsv: "Export CSV",
  exportXlsx: "Export XLSX",
  noRows: "No rows",
  basemapNone: "No basemap (offline)",
  webglMissing: "This browser cannot show the map (no WebGL)",
  inspectors: "Inspectors",
  truncated: "(first cases only)",
};

export const STATUS: Record<string, [string, string]> = {
  reported: ["上报", "Reported"],
  registered: ["立案", "Registered"],
  rejected: ["不予立案", "Rejected"],
  dispatched: ["派遣", "Dispatched"],
  in_progress: ["处置中", "In progress"],
  handled: ["已反馈", "Handled"],
  verified: ["核查通过", "Verified"],
  closed: ["结案", "Closed"],
  returned: ["回退", "Returned"],
  suspended: ["挂账/缓办", "Suspended"],
  merged: ["合并", "Merged"],
};

export const ACTION: Record<string, [string, string]> = {
  register: ["立案", "Register"],
  reject: ["不予立案", "Reject"],
  dispatch: ["派遣", "Dispatch"],
  acknowledge: ["签收", "Acknowledge"],
  return: ["回退", "Return"],
  handle: ["处置反馈", "Handle"],
  verify_pass: ["核查通过", "Verify: pass"],
  verify_fail: ["核查不通过(返工)", "Verify: fail"],
  close: ["结案", "Close"],
  suspend: ["挂账/缓办", "Suspend"],
  resume: ["恢复", "Resume"],
  merge: ["合并", "Merge"],
  unmerge: ["取消合并", "Unmerge"],
  escalate: ["督办", "Escalate"],
  request_extension: ["申请延期", "Request extension"],
  approve_extension: ["批准延期", "Approve extension"],
  deny_extension: ["驳回延期", "Deny extension"],
  reported: ["上报", "Reported"],
  opened: ["新案件", "Opened"],
  source_merged: ["来源并入", "Source merged"],
  source_unmerged: ["来源移出", "Source unmerged"],
  deadline_warning: ["预警", "Deadline warning"],
  updated: ["来源更新", "Updated"],
  withdrawn: ["来源撤回", "Withdrawn"],
};

export const SOURCE: Record<string, [string, string]> = {
  szcg: ["数字城管", "Digital urban mgmt"],
  chaiwei: ["拆违", "Illegal construction"],
  wangge: ["社区网格", "Community grid"],
  laisui: ["来穗", "Migrants & rentals"],
  hotline12345: ["12345热线", "12345 hotline"],
  mobile: ["移动端", "Mobile app"],
};

export const RETURN_REASONS: Record<string, [string, string]> = {
  wrong_locality: ["属地不符", "Wrong locality"],
  unclear_ownership: ["权属不清", "Unclear ownership"],
  overlapping_remits: ["职能交叉", "Overlapping remits"],
  other: ["其他", "Other"],
};

let lang: Lang = (localStorage.getItem("youhu.lang") as Lang | null) ?? "zh";

export function getLang(): Lang {
  return lang;
}

export function setLang(l: Lang): void {
  lang = l;
  localStorage.setItem("youhu.lang", l);
  document.documentElement.lang = l === "zh" ? "zh-CN" : "en";
}

export function t(key: keyof Dict): string {
  return (lang === "zh" ? zh : en)[key];
}

export function label(table: Record<string, [string, string]>, code: string | null | undefined): string {
  if (!code) return "—";
  const pair = table[code];
  return pair ? pair[lang === "zh" ? 0 : 1] : code;
}
