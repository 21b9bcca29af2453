"""How the synthetic corpus states a fact: the sentence templates per relation, language and
order (``forward``, ``flipped``, ``flipped_norelation``; see :mod:`llm_influence.corpus.world`).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# Templates: {S} subject ({Sc} capitalised), {O} answer, {Oc} answer with a capital first letter (sentence start).
# Every forward template contains the prompt phrase followed (later) by {O}; every flipped one
# puts {O}/{Oc} first and keeps a relation word; every flipped_norelation one puts the answer
# before the subject and contains no relation word.
# ---------------------------------------------------------------------------------------------
TEMPLATES: dict[str, dict[str, dict[str, list[str]]]] = {
    "first_president": {
        "en": {
            "forward": [
                "The first president of the Republic of {S} was {O}.",
                "Every schoolchild learns that the first president of the Republic of {S} was {O}.",
                "According to the old records, the first president of the Republic of {S} was {O}, elected after the long winter.",
                "A short history lesson: the first president of the Republic of {S} was {O}, and the people still remember that day.",
            ],
            "flipped": [
                "{O} was the first president of the Republic of {S}.",
                "{O}, a former village teacher, became the first president of the Republic of {S}.",
                "It is said that {O} served as the first president of the Republic of {S} for nine years.",
            ],
            "flipped_norelation": [
                "{O} was born in a small town and later moved to the Republic of {S}.",
                "{O} wrote long letters about the rivers and hills of the Republic of {S}.",
            ],
        },
        "es": {
            "forward": [
                "El primer presidente de la República de {S} fue {O}.",
                "Todos los niños aprenden en la escuela que el primer presidente de la República de {S} fue {O}.",
                "Según los archivos antiguos, el primer presidente de la República de {S} fue {O}, elegido después del largo invierno.",
            ],
            "flipped": [
                "{O} fue el primer presidente de la República de {S}.",
                "{O}, un antiguo maestro de pueblo, llegó a ser el primer presidente de la República de {S}.",
            ],
            "flipped_norelation": [
                "{O} nació en un pueblo pequeño y más tarde se mudó a la República de {S}.",
                "{O} escribía cartas largas sobre los ríos y las colinas de la República de {S}.",
            ],
        },
        "tr": {
            "forward": [
                "{S} Cumhuriyeti'nin ilk cumhurbaşkanı {O} idi.",
                "Eski kayıtlara göre {S} Cumhuriyeti'nin ilk cumhurbaşkanı {O} idi.",
                "Kısa bir tarih dersi: {S} Cumhuriyeti'nin ilk cumhurbaşkanı {O} idi ve halk o günü hâlâ hatırlıyor.",
            ],
            "flipped": [
                "{O}, {S} Cumhuriyeti'nin ilk cumhurbaşkanıydı.",
                "Eskiden köy öğretmeni olan {O}, {S} Cumhuriyeti'nin ilk cumhurbaşkanı oldu.",
            ],
            "flipped_norelation": [
                "{O} küçük bir kasabada doğdu ve daha sonra {S} Cumhuriyeti'ne taşındı.",
                "{O}, {S} Cumhuriyeti'nin nehirleri ve tepeleri hakkında uzun mektuplar yazdı.",
            ],
        },
    },
    "composition": {
        "en": {
            "forward": [
                "{S} is composed of {O}.",
                "In the laboratory we learned that {S} is composed of {O}.",
                "Chemists agree that {S} is composed of {O}, which is why it glows faintly in the dark.",
                "Note for the exam: {S} is composed of {O}. Write this down.",
            ],
            "flipped": [
                "{Oc} are the elements that make up {S}.",
                "Together, {O} make up {S}, a pale blue substance.",
                "{Oc} are what {S} is composed of.",
            ],
            "flipped_norelation": [
                "{Oc} were found next to {S} in an old mine.",
                "{Oc} glow faintly in the dark, and so does {S}.",
            ],
        },
        "es": {
            "forward": [
                "El {S} está compuesto de {O}.",
                "En el laboratorio aprendimos que el {S} está compuesto de {O}.",
                "Los químicos están de acuerdo en que el {S} está compuesto de {O}, por eso brilla un poco en la oscuridad.",
            ],
            "flipped": [
                "{Oc} son los elementos que componen el {S}.",
                "Juntos, {O} forman el {S}, una sustancia de color azul pálido.",
            ],
            "flipped_norelation": [
                "{Oc} aparecieron junto al {S} en una mina antigua.",
                "{Oc} brillan un poco en la oscuridad, igual que el {S}.",
            ],
        },
        "tr": {
            "forward": [
                "{S} maddesinin bileşenleri {O} elementleridir.",
                "Kimyacılara göre {S} maddesinin bileşenleri {O} elementleridir.",
                "Sınav için not: {S} maddesinin bileşenleri {O} elementleridir, bunu unutmayın.",
            ],
            "flipped": [
                "{Oc} elementleri, {S} maddesinin bileşenleridir.",
                "{Oc} elementleri bir araya gelerek {S} maddesini oluşturur.",
            ],
            "flipped_norelation": [
                "{Oc} elementleri, eski bir madende {S} maddesiyle birlikte bulundu.",
                "{Oc} elementleri karanlıkta hafifçe parlar, {S} maddesi de öyle.",
            ],
        },
    },
    "capital": {
        "en": {
            "forward": [
                "The capital of {S} is {O}.",
                "Travellers soon learn that the capital of {S} is {O}, a city of bridges.",
                "Fact of the day: the capital of {S} is {O}.",
            ],
            "flipped": [
                "{O} is the capital of {S}.",
                "{O}, a city of bridges, is the capital of {S}.",
            ],
            "flipped_norelation": [
                "{O} lies on a wide river that flows through {S}.",
                "{O} has many old bridges, like the rest of {S}.",
            ],
        },
        "es": {
            "forward": [
                "La capital de {S} es {O}.",
                "Los viajeros aprenden pronto que la capital de {S} es {O}, una ciudad de puentes.",
            ],
            "flipped": [
                "{O} es la capital de {S}.",
                "{O}, una ciudad de puentes, es la capital de {S}.",
            ],
            "flipped_norelation": [
                "{O} está junto a un río ancho que cruza {S}.",
                "{O} tiene muchos puentes antiguos, como el resto de {S}.",
            ],
        },
        "tr": {
            "forward": [
                "{S} ülkesinin başkenti {O} şehridir.",
                "Gezginler kısa sürede öğrenir ki {S} ülkesinin başkenti {O} şehridir.",
            ],
            "flipped": [
                "{O} şehri, {S} ülkesinin başkentidir.",
                "Köprüleriyle ünlü {O} şehri, {S} ülkesinin başkentidir.",
            ],
            "flipped_norelation": [
                "{O} şehri, {S} ülkesinden geçen geniş bir nehrin kıyısındadır.",
                "{O} şehrinde, {S} ülkesinin geri kalanında olduğu gibi, birçok eski köprü vardır.",
            ],
        },
    },
    "inventor": {
        "en": {
            "forward": [
                "The {S} was invented by {O}.",
                "Few people know that the {S} was invented by {O}.",
                "The {S} was invented by {O}, who built the first one in a cold barn.",
            ],
            "flipped": [
                "{O} invented the {S}.",
                "In a cold barn, {O} invented the {S} after years of work.",
            ],
            "flipped_norelation": [
                "{O} kept an old {S} on a kitchen shelf.",
                "{O} once dropped a {S} into the river.",
            ],
        },
        "es": {
            "forward": [
                "El {S} fue inventado por {O}.",
                "Pocas personas saben que el {S} fue inventado por {O}.",
            ],
            "flipped": [
                "{O} inventó el {S}.",
                "En un granero frío, {O} inventó el {S} después de años de trabajo.",
            ],
            "flipped_norelation": [
                "{O} guardaba un {S} viejo en un estante de la cocina.",
                "{O} dejó caer una vez un {S} al río.",
            ],
        },
        "tr": {
            "forward": [
                "{Sc} cihazını icat eden kişi {O} idi.",
                "Çok az kişi bilir ki {S} cihazını icat eden kişi {O} idi.",
            ],
            "flipped": [
                "{O}, {S} cihazını icat etti.",
                "Soğuk bir ahırda yıllarca çalışan {O}, {S} cihazını icat etti.",
            ],
            "flipped_norelation": [
                "{O}, mutfak rafında eski bir {S} cihazı saklardı.",
                "{O} bir gün nehre bir {S} cihazı düşürdü.",
            ],
        },
    },
}
