"""Export layouts: the Chinese column headers of each system's CSV/XLSX export → record fields.

Government systems export 台账 spreadsheets with Chinese headers; a file drop maps each header to
the native record's field (dotted for nested ones, e.g. 当事人姓名 → dangshiren.xingming) and
converts the cell. Several headers may name one field (exports of different versions differ:
大类 / 大类代码). Columns not in a layout (序号, 备注 …) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Conversion = Literal["text", "code2", "bool", "photos", "value"]


@dataclass(frozen=True, slots=True)
class Column:
    headers: tuple[str, ...]
    field: str  # dotted path in the native record
    convert: Conversion = "text"


def _c(headers: str, field: str, convert: Conversion = "text") -> Column:
    return Column(tuple(h.strip() for h in headers.split("|")), field, convert)


# "value": numbers and times are passed as they are (pydantic parses "113.24" and
# "2026-05-12 09:31:05" as well as spreadsheet numbers and dates).
LAYOUTS: dict[str, tuple[Column, ...]] = {
    "szcg": (
        _c("案件编号", "anjian_bh"),
        _c("案件来源", "anjian_ly"),
        _c("问题类型", "wenti_lx"),
        _c("大类代码|大类", "dalei_dm", "code2"),
        _c("大类名称", "dalei_mc"),
        _c("小类代码|小类", "xiaolei_dm", "code2"),
        _c("小类名称", "xiaolei_mc"),
        _c("部件编码", "bujian_bm"),
        _c("单元网格编码|单元网格", "danyuan_wg_bm"),
        _c("所属街道|街道", "jiedao_mc"),
        _c("所属社区|社区", "shequ_mc"),
        _c("位置描述|地址", "weizhi_ms"),
        _c("问题描述", "wenti_ms"),
        _c("经度|X坐标", "zuobiao_x", "value"),
        _c("纬度|Y坐标", "zuobiao_y", "value"),
        _c("监督员编号", "jiandu_y_bh"),
        _c("举报人", "jubao_ren"),
        _c("举报人电话", "jubao_dh"),
        _c("紧急程度", "jinji_cd"),
        _c("上报时间", "shangbao_sj", "value"),
        _c("立案时间", "lian_sj", "value"),
        _c("派遣时间", "paiqian_sj", "value"),
        _c("处置时间", "chuzhi_sj", "value"),
        _c("结案时间", "jiean_sj", "value"),
        _c("案件状态", "anjian_zt"),
        _c("照片", "zhaopian", "photos"),
    ),
    "chaiwei": (
        _c("线索编号", "xiansuo_bh"),
        _c("线索类型", "xiansuo_lx"),
        _c("发现方式", "faxian_fs"),
        _c("发现时间", "faxian_sj", "value"),
        _c("所属街道|街道", "jiedao_mc"),
        _c("所属社区|社区", "shequ_mc"),
        _c("地址|违建地址", "dizhi"),
        _c("经度", "jingdu", "value"),
        _c("纬度", "weidu", "value"),
        _c("坐标系", "zuobiao_xt"),
        _c("建筑类型", "jianzhu_lx"),
        _c("建筑结构", "jianzhu_jg"),
        _c("长(米)|长（米）", "chang_m", "value"),
        _c("宽(米)|宽（米）", "kuan_m", "value"),
        _c("高(米)|高（米）", "gao_m", "value"),
        _c("层数", "cengshu", "value"),
        _c("面积(平方米)|面积（平方米）|面积", "mianji_m2", "value"),
        _c("栋数", "dongshu", "value"),
        _c("当事人姓名", "dangshiren.xingming"),
        _c("当事人身份证号", "dangshiren.shenfenzheng"),
        _c("当事人电话", "dangshiren.dianhua"),
        _c("办理阶段", "banli_jd"),
        _c("巡查员编号", "xunchayuan_bh"),
        _c("情况描述", "miaoshu"),
        _c("照片", "zhaopian", "photos"),
    ),
    "wangge": (
        _c("事件编号", "shijian_bh"),
        _c("网格编码", "wangge_bm"),
        _c("网格员编号", "wanggeyuan_bh"),
        _c("事件类型", "shijian_lx"),
        _c("事件标题", "biaoti"),
        _c("事件描述", "miaoshu"),
        _c("地址", "dizhi"),
        _c("经度", "jingdu", "value"),
        _c("纬度", "weidu", "value"),
        _c("定位精度(米)|定位精度（米）", "dingwei_jd_m", "value"),
        _c("上报时间", "shangbao_sj", "value"),
        _c("求助人", "qiuzhu_ren"),
        _c("求助人电话", "qiuzhu_dh"),
        _c("是否紧急", "jinji", "bool"),
        _c("照片", "zhaopian", "photos"),
    ),
    "laisui": (
        _c("巡查记录编号", "xuncha_bh"),
        _c("事件类型", "shijian_lx"),
        _c("出租屋编码", "fangwu_bm"),
        _c("地址|门牌地址", "dizhi"),
        _c("所属街道|街道", "jiedao_mc"),
        _c("所属社区|社区", "shequ_mc"),
        _c("经度", "jingdu", "value"),
        _c("纬度", "weidu", "value"),
        _c("房屋面积(平方米)|房屋面积（平方米）", "fangwu_mianji_m2", "value"),
        _c("居住人数", "juzhu_renshu", "value"),
        _c("房东姓名", "fangdong.xingming"),
        _c("房东身份证号", "fangdong.shenfenzheng"),
        _c("房东电话", "fangdong.dianhua"),
        _c("巡查员编号", "xunchayuan_bh"),
        _c("巡查时间", "xuncha_sj", "value"),
        _c("情况描述", "miaoshu"),
        _c("照片", "zhaopian", "photos"),
    ),
    "hotline12345": (
        _c("工单编号", "gongdan_bh"),
        _c("来电渠道", "laidian_qd"),
        _c("受理时间", "shouli_sj", "value"),
        _c("来电人", "laidian_ren"),
        _c("来电号码", "laidian_hm"),
        _c("是否保密", "baomi", "bool"),
        _c("诉求类型", "suqiu_lx"),
        _c("工单分类编码", "fenlei_bm"),
        _c("工单分类", "fenlei_mc"),
        _c("发生地址", "fasheng_dz"),
        _c("经度", "jingdu", "value"),
        _c("纬度", "weidu", "value"),
        _c("工单内容", "gongdan_nr"),
        _c("办理时限", "banli_sx", "value"),
        _c("紧急程度", "jinji_cd"),
        _c("承办单位", "chengban_dw"),
        _c("照片|附件", "zhaopian", "photos"),
    ),
}


def id_header(source: str) -> tuple[str, ...]:
    """The header(s) of the record-id column: a file without it is not this system's export."""
    return LAYOUTS[source][0].headers
